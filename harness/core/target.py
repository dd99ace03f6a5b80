"""Per-target settings: API base path, subscription operations vocabulary, TLS files and report granularity.

Pure: validated at construction with one-line errors naming the key (`target.tls.client_key ...`); the TLS
context itself is built by harness.net.tls (an edge) inside the process that uses it.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from harness.core.keys import unknown_key
from harness.dialects import GRANULARITIES, OPERATION_VOCABULARIES

KEYS = ("base_path", "operations", "granularity", "tls", "source_addresses")  # keys of a profile's [target] table read here
TLS_KEYS = ("ca_bundle", "client_cert", "client_key", "verify")


@dataclass(frozen=True)
class TargetSettings:
    base_path: str = ""  # e.g. "/openadr3/3.0.1"; "" when the target URL already ends with it
    operations: str = "crud"  # subscription operations: "crud" (READ/CREATE/..) | "http" (GET/POST/..)
    granularity: str | None = None  # "ven" | "resource" | "load"; None: the dialect's default
    ca_bundle: str | None = None  # PEM file of CAs to trust instead of the system store
    client_cert: str | None = None  # PEM client certificate (mutual TLS)
    client_key: str | None = None  # its key, when not in client_cert's file
    verify: bool = True  # False: no certificate or hostname check (test VTNs only)
    # Local IP addresses the VENs' connections leave from, VEN i from source_addresses[i % n]: each address has its
    # own ~28,000 ephemeral ports to the target (empty: the kernel's choice; chosen for loopback fleets that need it).
    source_addresses: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        bp = self.base_path
        if not isinstance(bp, str) or (bp and not bp.startswith("/")) or any(c in bp for c in "?# "):
            raise ValueError(f"target.base_path must be empty or a path like /openadr3/3.0.1, got {bp!r}")
        object.__setattr__(self, "base_path", bp.rstrip("/"))
        if not isinstance(self.operations, str) or self.operations not in OPERATION_VOCABULARIES:
            raise ValueError(f"target.operations must be one of {', '.join(OPERATION_VOCABULARIES)}, got {self.operations!r}")
        if self.granularity is not None and (not isinstance(self.granularity, str) or self.granularity not in GRANULARITIES):
            raise ValueError(f"target.granularity must be one of {', '.join(GRANULARITIES)}, got {self.granularity!r}")
        for key in ("ca_bundle", "client_cert", "client_key"):
            v = getattr(self, key)
            if v is not None and (not isinstance(v, str) or not v.strip()):
                raise ValueError(f"target.tls.{key} must be a file path, got {v!r}")
        if not isinstance(self.verify, bool):
            raise ValueError(f"target.tls.verify must be true or false, got {self.verify!r}")
        if self.client_key is not None and self.client_cert is None:
            raise ValueError("target.tls.client_key needs target.tls.client_cert")
        addrs = self.source_addresses
        if isinstance(addrs, str) or not isinstance(addrs, (tuple, list)):
            raise ValueError(f"target.source_addresses must be a list of IP addresses, got {addrs!r}")
        for a in addrs:
            try:
                ipaddress.ip_address(a)
            except ValueError:
                raise ValueError(f"target.source_addresses: {a!r} is not an IP address") from None
        if len(set(addrs)) != len(addrs):
            raise ValueError(f"target.source_addresses lists an address twice: {list(addrs)}")
        object.__setattr__(self, "source_addresses", tuple(addrs))
        if self.ca_bundle is not None and not self.verify:
            raise ValueError("target.tls.ca_bundle is set but target.tls.verify is false: choose one")

    @property
    def uses_tls_files(self) -> bool:
        return self.ca_bundle is not None or self.client_cert is not None or not self.verify

    def source_for(self, ven_index: int) -> str | None:
        """The local address VEN `ven_index` (fleet-wide) connects from; None: the kernel's choice."""
        addrs = self.source_addresses
        return addrs[ven_index % len(addrs)] if addrs else None

    def base_url(self, target_url: str) -> str:
        """The URL that request paths are appended to: the target URL with the base path, not doubled, no
        trailing slash. `http://h:8080` + `/openadr3/3.0.1` -> `http://h:8080/openadr3/3.0.1`."""
        parts = urlsplit(target_url)
        path = parts.path.rstrip("/")
        if self.base_path and not path.endswith(self.base_path):
            path += self.base_path
        return urlunsplit((parts.scheme, parts.netloc, path, "", ""))


def from_table(table: Mapping[str, Any]) -> TargetSettings:
    """Settings from a profile's `[target]` table (keys outside KEYS are the profile's: url, dialect, ...)."""
    tls = table.get("tls", {})
    if not isinstance(tls, Mapping):
        raise ValueError(f"target.tls must be a table, got {tls!r}")
    unknown = sorted(set(tls) - set(TLS_KEYS))
    if unknown:
        raise ValueError(unknown_key(f"target.tls.{unknown[0]}", (f"target.tls.{k}" for k in TLS_KEYS)))
    kwargs: dict[str, Any] = {k: table[k] for k in ("base_path", "operations", "granularity", "source_addresses") if k in table}
    kwargs.update({k: tls[k] for k in TLS_KEYS if k in tls})
    return TargetSettings(**kwargs)
