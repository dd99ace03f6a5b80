"""`VtnConfig`: everything the embedded VTN needs, as one frozen, picklable dataclass.

Pure. Secrets are excluded from repr so a config can be logged; validation names the option it rejects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from harness.core import embedded
from harness.core.credentials import VenLogin
from harness.net.mqtt import parse_mqtt_url
from harness.vtn.faults import Faults

VEN_CLIENT_ID_PATTERN = r"^ven-[A-Za-z0-9_.-]{1,120}$"


NOTIFICATION_CASES = ("camel", "snake")


@dataclass(frozen=True)
class VtnConfig:
    host: str = "127.0.0.1"
    port: int = 0  # 0: a free port, reported once listening
    db_path: str = ":memory:"
    base_path: str = "/openadr3/3.0.1"  # "" serves the API at the root
    base_path_31: str | None = "/openadr3/3.1.0"  # the OpenADR 3.1.0 API beside it; None: 3.0.1 only
    bl_client_id: str = embedded.BL_CLIENT_ID
    bl_client_secret: str = field(default=embedded.BL_SECRET, repr=False)
    ven_client_secret: str = field(default=embedded.VEN_SECRET, repr=False)
    # How VENs log in (one at most; neither: any `ven-<name>` with ven_client_secret). ven_client_id: one shared VEN
    # client, as the Alliance's reference VTN issues; ven_logins: pre-registered VENs (a credentials file), each with
    # its own client id and secret or a pre-issued token that never expires.
    ven_client_id: str | None = None
    ven_logins: tuple[VenLogin, ...] = field(default=(), repr=False)
    token_ttl_s: float = 3600.0
    faults: Faults = Faults()
    # Group commit: writes share one transaction, committed this long after the first write of a batch
    # (0: at the next loop iteration) or as soon as `commit_max_writes` are pending. A write's response
    # waits for the commit that holds it.
    commit_interval_s: float = 0.0
    commit_max_writes: int = 512
    notify_timeout_s: float = 5.0
    notify_max_connections: int = 100
    shutdown_timeout_s: float = 5.0
    # MQTT notifications (3.1.0): the broker the VTN publishes to (mqtt://HOST:PORT; None: no MQTT notifier),
    # the URIs `GET /notifiers` advertises to VENs (default: mqtt_url), and the QoS of every publish.
    mqtt_url: str | None = None
    mqtt_uris: tuple[str, ...] = ()
    mqtt_qos: int = 1
    mqtt_connect_timeout_s: float = 10.0
    # 3.1.0 notification bodies: "camel" as the 3.1.0 document defines them, or "snake" (every key snake_case) as
    # the Alliance's reference VTN sends them.
    notification_case: str = "camel"
    access_log: bool = False
    # The null VTN (harness.vtn.null): canned answers at wire speed, nothing stored, no auth or faults — for
    # measuring harness itself. `processes` > 1 serves one port from several processes (SO_REUSEPORT): each
    # process holds its own connections, so together they hold more than one process's open-files limit.
    null: bool = False
    processes: int = 1

    def __post_init__(self) -> None:
        if not 0 <= self.port <= 65535:
            raise ValueError(f"port must be 0..65535, got {self.port}")
        if self.base_path and (not self.base_path.startswith("/") or self.base_path.endswith("/")):
            raise ValueError(f"base_path must be empty or start with '/' and not end with '/', got {self.base_path!r}")
        if self.base_path_31 is not None and (
                not self.base_path_31.startswith("/") or self.base_path_31.endswith("/") or self.base_path_31 == self.base_path):
            raise ValueError(f"base_path_31 must start with '/', not end with '/' and differ from base_path, got {self.base_path_31!r}")
        if self.mqtt_url is not None:
            parse_mqtt_url(self.mqtt_url)
        for uri in self.mqtt_uris:
            parse_mqtt_url(uri, "mqtt_uris")
        if self.notification_case not in NOTIFICATION_CASES:
            raise ValueError(f"notification_case must be one of {', '.join(NOTIFICATION_CASES)}, got {self.notification_case!r}")
        if self.mqtt_qos not in (0, 1):
            raise ValueError(f"mqtt_qos must be 0 or 1, got {self.mqtt_qos}")
        if not self.mqtt_connect_timeout_s > 0:
            raise ValueError(f"mqtt_connect_timeout must be > 0, got {self.mqtt_connect_timeout_s}")
        if not self.db_path:
            raise ValueError("db must be a file path or ':memory:', got ''")
        if not self.bl_client_id or re.match(VEN_CLIENT_ID_PATTERN, self.bl_client_id):
            raise ValueError(f"bl_client_id must be non-empty and not look like a VEN client id, got {self.bl_client_id!r}")
        if not self.bl_client_secret or not self.ven_client_secret:
            raise ValueError("client secrets must be non-empty")
        if self.ven_client_id is not None:
            if not self.ven_client_id.strip() or self.ven_client_id == self.bl_client_id:
                raise ValueError(f"shared VEN client id must be non-empty and not the BL client's, got {self.ven_client_id!r}")
            if self.ven_logins:
                raise ValueError("a shared VEN client and a VEN credentials file exclude each other: choose one")
        if any(x.client_id == self.bl_client_id for x in self.ven_logins):
            raise ValueError(f"VEN credentials: client id {self.bl_client_id!r} is the BL client's")
        if not self.token_ttl_s > 0:
            raise ValueError(f"token_ttl must be > 0, got {self.token_ttl_s}")
        if not 0 <= self.commit_interval_s <= 1.0:
            raise ValueError(f"commit_interval must be 0..1s, got {self.commit_interval_s}")
        if self.commit_max_writes < 1:
            raise ValueError(f"commit_max_writes must be >= 1, got {self.commit_max_writes}")
        if not self.notify_timeout_s > 0:
            raise ValueError(f"notify_timeout must be > 0, got {self.notify_timeout_s}")
        if self.notify_max_connections < 1:
            raise ValueError(f"notify_max_connections must be >= 1, got {self.notify_max_connections}")
        if self.processes < 1:
            raise ValueError(f"processes must be >= 1, got {self.processes}")
        if self.processes > 1 and not self.null:
            raise ValueError("processes > 1 needs the null VTN: the SQLite store is one process's")
        if self.shutdown_timeout_s < 0:
            raise ValueError(f"shutdown_timeout must be >= 0, got {self.shutdown_timeout_s}")
        # client id -> secret, built once: a token request looks its client up in O(1) (not a field: not compared,
        # not shown; rebuilt by replace(), which constructs anew).
        object.__setattr__(self, "_ven_secrets", {x.client_id: x.secret for x in self.ven_logins if x.client_id and x.secret})

    def ven_login_secret(self, client_id: str) -> str | None:
        """The secret of a pre-registered VEN client id (ven_logins), or None."""
        secrets: dict[str, str] = self.__dict__["_ven_secrets"]
        return secrets.get(client_id)


