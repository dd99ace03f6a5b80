"""VEN credentials as VTNs issue them: the modes, a credentials file's rows, and which row serves which VEN.

Pure: parses CSV text the caller read; errors are ValueError, one line naming the file and the row. Secrets and
tokens are never in a repr, an error message or anything written to results.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from urllib.parse import urlsplit

# How VENs get their tokens (Credentials.ven_mode; docs/targets.md "Credentials" shows one example each).
PER_VEN = "per-ven"  # client id ven_client_prefix + venName, the VEN secret (the embedded VTN's default)
SHARED = "shared"  # one client id for every VEN, the VEN secret; one token per VEN, or per worker (shared_token)
FILE = "file"  # a credentials file: per VEN its own client id and secret, or its own pre-issued token
TOKEN = "token"  # one pre-issued bearer token for every VEN (no token endpoint)
MODES = (PER_VEN, SHARED, FILE, TOKEN)

DISCOVER = "discover"  # token_url: ask GET {base}/auth/server for the tokenURL (OpenADR 3.1)

# Header names a credentials file may use for each column (compared without case, spaces, '_' or '-').
_COLUMNS = {
    "ven_name": ("venname", "ven"),
    "client_id": ("clientid", "client"),
    "secret": ("secret", "clientsecret"),
    "token": ("token", "accesstoken", "bearertoken"),
}


def check_credential_keys(ven_client_id: str | None, ven_credentials: str | None, ven_token_env: str | None,
                          shared_token: bool, token_url: str | None, bl_client_id: str) -> None:
    """A profile's VEN credential keys: one way at most, each well formed (a file itself is read at run set-up).
    A ValueError names the [target] key."""
    given = [k for k, v in (("ven_client_id", ven_client_id), ("ven_credentials", ven_credentials),
                            ("ven_token_env", ven_token_env)) if v is not None]
    if len(given) > 1:
        raise ValueError(f"target.{given[0]} and target.{given[1]} exclude each other: choose how VENs log in")
    for key, value in (("ven_client_id", ven_client_id), ("ven_credentials", ven_credentials),
                       ("ven_token_env", ven_token_env)):
        if value is not None and not value.strip():
            raise ValueError(f"target.{key} must not be empty")
    if ven_client_id is not None and ven_client_id == bl_client_id:
        raise ValueError(f"target.ven_client_id {ven_client_id!r} is the business-logic client (target.bl_client_id)")
    if shared_token and ven_client_id is None:
        raise ValueError("target.shared_token needs target.ven_client_id (one shared VEN credential)")
    if token_url is not None and token_url != DISCOVER:
        u = urlsplit(token_url)
        if not (u.scheme in ("http", "https") and u.hostname) and not token_url.startswith("/"):
            raise ValueError(f"target.token_url must be \"discover\", an http(s) URL or a path under the target like "
                             f"/auth/token, got {token_url!r}")


@dataclass(frozen=True)
class VenLogin:
    """One VEN's row of a credentials file: a client id and secret, or a pre-issued bearer token (or both: the
    token is used, the client id names the VEN to the VTN)."""

    ven_name: str
    client_id: str = ""
    secret: str = field(default="", repr=False)
    token: str = field(default="", repr=False)

    def __repr__(self) -> str:  # a token or secret never reaches a log or a traceback
        kind = "token" if self.token else "secret"
        return f"VenLogin(ven_name={self.ven_name!r}, client_id={self.client_id!r}, {kind}=***)"


def _norm(name: str) -> str:
    return "".join(c for c in name.strip().lower() if c not in " _-")


def parse_csv(text: str, source: str = "<csv>") -> tuple[VenLogin, ...]:
    """Rows of a credentials file: a header naming venName and either clientID + secret or token (or all), then
    one row per VEN. A VEN, client id or token listed twice is an error: each VEN has its own."""
    rows = list(csv.reader(io.StringIO(text.removeprefix("\ufeff"))))
    rows = [r for r in rows if any(c.strip() for c in r)]
    if not rows:
        raise ValueError(f"file {source} is empty: expected a header such as venName,clientID,secret (or venName,token)")
    header = [_norm(c) for c in rows[0]]
    col: dict[str, int] = {}
    for key, names in _COLUMNS.items():
        hits = [i for i, h in enumerate(header) if h in names]
        if len(hits) > 1:
            raise ValueError(f"file {source} row 1: two columns for {key}: {rows[0][hits[0]]!r} and {rows[0][hits[1]]!r}")
        if hits:
            col[key] = hits[0]
    if "ven_name" not in col:
        raise ValueError(f"file {source} row 1: no venName column (header: {','.join(c.strip() for c in rows[0])})")
    has_login = "client_id" in col and "secret" in col
    if not has_login and "token" not in col:
        raise ValueError(f"file {source} row 1: needs clientID and secret columns, or a token column")
    if ("client_id" in col) != ("secret" in col) and "token" not in col:
        raise ValueError(f"file {source} row 1: clientID and secret come together")
    if len(rows) < 2:
        raise ValueError(f"file {source} has a header but no VEN rows")
    out: list[VenLogin] = []
    seen_ven: dict[str, int] = {}
    seen_id: dict[str, int] = {}
    seen_token: dict[str, int] = {}
    for n, row in enumerate(rows[1:], start=2):
        if len(row) != len(rows[0]):
            raise ValueError(f"file {source} row {n}: expected {len(rows[0])} columns, got {len(row)}")

        def cell(key: str) -> str:
            return row[col[key]].strip() if key in col else ""

        login = VenLogin(cell("ven_name"), cell("client_id"), cell("secret"), cell("token"))
        if not login.ven_name:
            raise ValueError(f"file {source} row {n}: empty venName")
        if not login.token and not (login.client_id and login.secret):
            raise ValueError(f"file {source} row {n} (VEN {login.ven_name}): needs a client id and a secret, or a token")
        for value, seen, what in ((login.ven_name, seen_ven, "VEN"), (login.client_id, seen_id, "client id"),
                                  (login.token, seen_token, "token")):
            if not value:
                continue
            if value in seen:
                shown = "a token" if what == "token" else f"{what} {value}"  # a token is never printed
                raise ValueError(f"file {source} row {n}: {shown} already listed in row {seen[value]}")
            seen[value] = n
        out.append(login)
    return tuple(out)


def for_fleet(logins: Iterable[VenLogin], ven_names: Sequence[str], source: str) -> tuple[VenLogin, ...]:
    """The rows for these VENs, in fleet order; a VEN with no row is an error naming it (the first one missing)."""
    by_name = {x.ven_name: x for x in logins}
    out = []
    for name in ven_names:
        login = by_name.get(name)
        if login is None:
            raise ValueError(f"file {source} has no row for VEN {name} ({len(by_name)} rows; the fleet's VENs are "
                             f"named fleet.name_prefix + -ven- + 7 digits, e.g. {ven_names[0]})")
        out.append(login)
    return tuple(out)
