"""OAuth2 client credentials for the embedded VTN: who may get a token, with which scopes, and token lookup.

No I/O; the clock is injected. Tokens are opaque random strings held in memory only (a restarted VTN
answers old tokens with 401, and clients fetch new ones). Secrets and tokens are never logged or repr'd.
"""

from __future__ import annotations

import hmac
import re
import secrets
import time
from dataclasses import dataclass, field
from collections.abc import Callable, Mapping

from harness.vtn.config import VEN_CLIENT_ID_PATTERN, VtnConfig

READ_ALL = "read_all"
WRITE_PROGRAMS = "write_programs"
WRITE_EVENTS = "write_events"
WRITE_REPORTS = "write_reports"
WRITE_SUBSCRIPTIONS = "write_subscriptions"
WRITE_VENS = "write_vens"
# 3.1.0 read scopes: programs and events are read with read_targets, VEN-created objects with read_ven_objects,
# the fleet-wide MQTT topic names with read_bl; /notifiers and the program topics still need read_all.
READ_TARGETS = "read_targets"
READ_VEN_OBJECTS = "read_ven_objects"
READ_BL = "read_bl"

BL_SCOPES = frozenset({READ_ALL, WRITE_PROGRAMS, WRITE_EVENTS, WRITE_VENS, WRITE_SUBSCRIPTIONS})
VEN_SCOPES = frozenset({READ_ALL, WRITE_REPORTS, WRITE_VENS, WRITE_SUBSCRIPTIONS})
BL_SCOPES_31 = BL_SCOPES | {READ_TARGETS, READ_VEN_OBJECTS, READ_BL}
VEN_SCOPES_31 = VEN_SCOPES | {READ_TARGETS, READ_VEN_OBJECTS}
SCOPE_ORDER = (READ_ALL, READ_TARGETS, READ_VEN_OBJECTS, READ_BL, WRITE_PROGRAMS, WRITE_EVENTS, WRITE_REPORTS,
               WRITE_SUBSCRIPTIONS, WRITE_VENS)

_VEN_ID = re.compile(VEN_CLIENT_ID_PATTERN)


@dataclass(frozen=True)
class Principal:
    """An authenticated client. A VEN principal sees only the objects it owns; BL sees everything."""

    client_id: str
    scopes: frozenset[str]
    is_ven: bool

    def may_access(self, owner: str) -> bool:
        return not self.is_ven or owner == self.client_id


@dataclass(frozen=True)
class Token:
    value: str = field(repr=False)
    principal: Principal
    expires_at: float  # on the TokenStore's clock


class OAuthError(Exception):
    """An RFC 6749 §5.2 error answer from the token endpoint."""

    def __init__(self, status: int, error: str, description: str) -> None:
        super().__init__(error, description)
        self.status = status
        self.error = error
        self.description = description


def _same(a: str, b: str) -> bool:
    return hmac.compare_digest(a.encode(), b.encode())


def client_principal(config: VtnConfig, client_id: str, client_secret: str) -> Principal | None:
    """The principal for these credentials, or None when they are not valid. VENs log in as the config says:
    one shared VEN client id, the pre-registered ids of a credentials file, or any `ven-<name>` (the default)."""
    if client_id == config.bl_client_id:
        return Principal(client_id, BL_SCOPES, is_ven=False) if _same(client_secret, config.bl_client_secret) else None
    if config.ven_client_id is not None:
        ok = client_id == config.ven_client_id and _same(client_secret, config.ven_client_secret)
    elif config.ven_logins:
        secret = config.ven_login_secret(client_id)
        ok = secret is not None and _same(client_secret, secret)
    else:
        ok = _VEN_ID.match(client_id) is not None and _same(client_secret, config.ven_client_secret)
    return Principal(client_id, VEN_SCOPES, is_ven=True) if ok else None


def preissued(config: VtnConfig) -> dict[str, Principal]:
    """Bearer tokens issued before the VTN started (a credentials file's token column): token -> its VEN, whose
    client id is the row's or, without one, its venName."""
    # The 3.1.0 scope set: such a token never passes a token endpoint, and 3.1.0 reads need read_targets.
    return {x.token: Principal(x.client_id or x.ven_name, VEN_SCOPES_31, is_ven=True) for x in config.ven_logins if x.token}


def scopes_31(who: Principal) -> Principal:
    """The same client as the 3.1.0 token endpoint sees it: with the 3.1.0 read scopes of its kind."""
    return Principal(who.client_id, VEN_SCOPES_31 if who.is_ven else BL_SCOPES_31, who.is_ven)


def grant_scopes(allowed: frozenset[str], requested: str | None) -> frozenset[str]:
    """The scopes to grant: all allowed ones when none are requested, otherwise the allowed subset of the
    requested ones (unknown names are ignored); nothing in common → invalid_scope."""
    if requested is None or not requested.strip():
        return allowed
    wanted = set(requested.replace(",", " ").split())
    granted = frozenset(allowed & wanted)
    if not granted:
        raise OAuthError(400, "invalid_scope", "none of the requested scopes is available to this client")
    return granted


def format_scopes(scopes: frozenset[str]) -> str:
    return " ".join(s for s in SCOPE_ORDER if s in scopes)


class TokenStore:
    """Issued tokens by value. Expired tokens are dropped lazily and in periodic sweeps."""

    def __init__(self, ttl_s: float, clock: Callable[[], float] = time.monotonic,
                 preissued: Mapping[str, Principal] | None = None) -> None:
        self._ttl_s = ttl_s
        self._clock = clock
        self._tokens: dict[str, Token] = {}
        self._preissued = dict(preissued or {})  # never expire, never swept
        self._next_sweep = clock() + ttl_s

    def __len__(self) -> int:
        return len(self._tokens)

    @property
    def ttl_s(self) -> float:
        return self._ttl_s

    def issue(self, principal: Principal) -> Token:
        now = self._clock()
        if now >= self._next_sweep:
            self._tokens = {k: t for k, t in self._tokens.items() if t.expires_at > now}
            self._next_sweep = now + self._ttl_s
        token = Token(secrets.token_urlsafe(32), principal, now + self._ttl_s)
        self._tokens[token.value] = token
        return token

    def expire_all(self) -> int:
        """Every issued token expires now (a bad day's token storm); pre-issued tokens stay. Returns how many."""
        n, self._tokens = len(self._tokens), {}
        return n

    def lookup(self, value: str) -> tuple[Principal | None, str]:
        """(principal, "") for a live token, else (None, reason) with reason "unknown" or "expired"."""
        token = self._tokens.get(value)
        if token is None:
            who = self._preissued.get(value)
            return (who, "") if who is not None else (None, "unknown")
        if self._clock() >= token.expires_at:
            del self._tokens[value]
            return None, "expired"
        return token.principal, ""
