"""One VEN's measured requests: send, record against the intended time, and the tokens that authorise them.

Edge (awaits a Transport). A call records its outcome in the worker's Recorder and returns the reply or None;
HTTP failures are data, never raised. Tokens are per row (client credentials as the credential mode gives them, a
pre-issued token, or the VEN's own), or one per worker (shared_token), plus one shard-wide token of the privileged
provisioning credential when the target demands one.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any
from time import monotonic as _now  # the loop's clock to the ns: uvloop's loop.time() is whole milliseconds

import numpy as np

from harness.core import errors
from harness.core.credentials import DISCOVER
from harness.core.errors import Failure
from harness.core.recorder import Recorder
from harness.core.shard import ShardSpec
from harness.dialects import Dialect, Request, Token
from harness.net.base import Reply, Transport
from harness.net.wire import decode

TOKEN_REFRESH_MARGIN_S = 30.0
NO_EXPIRY_S = 10 * 365 * 86400.0  # a token without expires_in: good for the run


class VenCalls:
    """The request side of a shard's VENs: rows of tokens and Retry-After holds, and the calls that use them."""

    def __init__(
        self,
        spec: ShardSpec,
        dialect: Dialect,
        recorder: Recorder,
        transport_for: Callable[[int], Transport],
        name: Callable[[int], str],
        n_vens: int,
    ) -> None:
        self.spec = spec
        self.dialect = dialect
        self.rec = recorder
        self.transport_for = transport_for
        self._name = name
        self.token: list[str | None] = [None] * n_vens
        self.token_expiry = np.zeros(n_vens, dtype=np.float64)  # loop time
        self.throttled_until = np.zeros(n_vens, dtype=np.float64)  # loop time; a VEN told 429 + Retry-After waits
        self.fail_streak = np.zeros(n_vens, dtype=np.int64)  # failed attempts in a row (the back-off's exponent)
        # The same memory as memoryviews for the per-call element reads and writes (~20 ns, a numpy scalar's 30-140).
        # (Any: typeshed types a memoryview's items as int; these hold floats.)
        self.held: Any = self.throttled_until.data
        self._expiry: Any = self.token_expiry.data
        self._streak = self.fail_streak.data
        self._backs_off = spec.reconnect.kind != "none" or spec.reconnect.buffer > 0
        self.ven_token = np.zeros(n_vens, dtype=bool)  # the row's token is its own, from the VTN's POST /vens reply
        self.token_url: str | None = None  # a discovered 3.1.0 tokenURL; None: {base}/auth/token
        # Per-operation timeouts shorter than the transport's (which is the longest of them all).
        self._op_timeouts = {op: t for op, t in spec.op_timeouts if t < spec.timeout_s}
        self.counters: dict[str, int] = {}
        # The failure class of the latest call that failed: read by report() right after the await (nothing runs
        # in between), so the delivery ledger knows why a report was not acknowledged.
        self.last_failure = ""
        self._prov_token: asyncio.Task[str | None] | None = None  # the shard's provisioning-credential token
        self._prov_expiry = 0.0
        self._shared_token: asyncio.Task[tuple[str, float] | None] | None = None  # shared_token: the worker's one

    def count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    async def call(
        self, op: str, row: int, req: Request, intended: float, token: str | None, ok: tuple[int, ...]
    ) -> Reply | None:
        """Send one request; record it against `intended`; return the reply if its status is in ok."""
        sent = _now()
        limit = self._op_timeouts.get(op)
        try:
            if limit is None:
                reply = await self.transport_for(row).send(req, token)
            else:
                async with asyncio.timeout(limit):
                    reply = await self.transport_for(row).send(req, token)
        except Failure as f:
            self.failed(op, row, f, intended)
            return None
        except TimeoutError:
            self.failed(op, row, Failure(errors.READ_TIMEOUT, f"no response within the {op} timeout ({limit:g}s)"), intended)
            return None
        return self.replied(op, row, req, reply, intended, sent, ok)

    def failed(self, op: str, row: int, f: Failure, intended: float) -> None:
        """A request that got no reply: recorded, and the VEN backs off (the half of call() after the send; the
        report lane calls it from its callback)."""
        if f.retried:
            self.count("stale_connection_retries")
        self.rec.fail(op, f.error_class, f"{self._name(row)}: {f.message}", intended, _now())
        self.last_failure = f.error_class
        self._back_off(row)

    def replied(self, op: str, row: int, req: Request, reply: Reply, intended: float, sent: float,
                ok: tuple[int, ...]) -> Reply:
        """A reply: recorded against `intended` as a success (status in ok) or a refusal."""
        done = _now()
        if reply.retried:
            self.count("stale_connection_retries")
        if reply.status in ok:
            self.rec.ok(op, intended, sent, done)
            self._streak[row] = 0
            return reply
        self._refused(op, row, req, reply, intended, done)
        if reply.status >= 500:
            self._back_off(row)
        return reply

    def fresh_token(self, row: int) -> str | None:
        """The row's token if it is good for now (not missing, not about to expire): what authed() sends without
        fetching first."""
        token = self.token[row]
        return None if token is None or _now() > self._expiry[row] - TOKEN_REFRESH_MARGIN_S else token

    def op_timeout(self, op: str) -> float | None:
        """The operation's own timeout, where shorter than the transport's."""
        return self._op_timeouts.get(op)

    def _back_off(self, row: int) -> None:
        """A failed attempt: the VEN holds its next requests for the profile's back-off (behaviour.reconnect)."""
        if not self._backs_off:
            return
        self.fail_streak[row] += 1
        hold = self.spec.reconnect.delay(self.spec.seed, self.spec.ven_start + row, int(self.fail_streak[row]))
        self.throttled_until[row] = max(self.throttled_until[row], _now() + hold)
        self.count("backoff_holds")

    def _refused(self, op: str, row: int, req: Request, reply: Reply, intended: float, done: float) -> None:
        """Record a reply whose status the operation does not accept; honour a 429's Retry-After."""
        if reply.status == 429 and reply.retry_after_s is not None:
            # The worker holds this VEN's next operations (they keep their intended times).
            self.count("throttled")
            self.throttled_until[row] = max(self.throttled_until[row], done + reply.retry_after_s)
        try:
            doc = decode(reply.body)
        except Failure:
            doc = reply.body[:160].decode("utf-8", "replace")
        problem = self.dialect.parse_problem(reply.status, doc)  # notes non-problem bodies, string statuses
        self.rec.fail(op, errors.http_class(reply.status), f"{self._name(row)}: {req.method} {req.path.split('?')[0]} -> {problem}",
                      intended, done)

    async def authed(self, op: str, row: int, req: Request, intended: float, ok: tuple[int, ...]) -> Reply | None:
        """A call with the VEN's bearer token: fetched if missing or expiring, refreshed once on 401."""
        if self.fresh_token(row) is None:
            if not await self.fetch_token(row, _now()):
                return None
        reply = await self.call(op, row, req, intended, self.token[row], ok)
        if reply is not None and reply.status == 401:
            reply = await self.after_401(op, row, req, reply, ok)
        return reply

    async def after_401(self, op: str, row: int, req: Request, reply: Reply, ok: tuple[int, ...]) -> Reply | None:
        """The VTN refused the VEN's token: refresh it once and send again (the reply to the retry, or the 401)."""
        if self.ven_token[row]:
            # The VEN's own token was refused: ask the VTN for its current one, not for client credentials.
            self.count("ven_token_refresh_on_401")
            refreshed = await self._refresh_ven_token(row)
        else:
            self.count("token_refresh_on_401")
            refreshed = await self.fetch_token(row, _now(), refresh=True)
        if refreshed:
            return await self.call(op, row, req, _now(), self.token[row], ok)
        return reply

    def adopt_ven_token(self, row: int, tok: Token | None) -> bool:
        """A per-VEN token from the VTN's VEN object becomes the row's token, with no expiry."""
        if tok is None:
            return False
        self.token[row] = tok.access_token
        self.token_expiry[row] = np.inf
        self.ven_token[row] = True
        return True

    async def _refresh_ven_token(self, row: int) -> bool:
        """Look the VEN up again (with a client-credentials token) and adopt the token its VEN object holds."""
        if not await self.fetch_token(row, _now()):
            return False
        found = await self.call("find_ven", row, self.dialect.find_ven(self._name(row)), _now(), self.token[row], (200,))
        if found is None or found.status != 200:
            return False
        try:
            return self.adopt_ven_token(row, self.dialect.token_from_create_ven(decode(found.body)))
        except Failure as f:
            self.rec.fail("find_ven", f.error_class, f"{self._name(row)}: {f.message}")
            return False

    async def _provisioner_token(self, row: int, refresh: bool = False) -> str | None:
        """The shard's token of the privileged provisioning credential: fetched once, shared by every VEN."""
        loop = asyncio.get_running_loop()
        if refresh or (self._prov_token is not None and self._prov_token.done() and
                       (self._prov_token.result() is None or _now() > self._prov_expiry - TOKEN_REFRESH_MARGIN_S)):
            self._prov_token = None
        if self._prov_token is None:
            self._prov_token = loop.create_task(self._fetch_provisioner_token(row))
        return await asyncio.shield(self._prov_token)

    async def _fetch_provisioner_token(self, row: int) -> str | None:
        creds = self.spec.credentials
        assert creds.provisioning_client_id is not None
        req = self.dialect.token(creds.provisioning_client_id, creds.provisioning_secret, token_url=self.token_url)
        tok = await self._token_call("provisioning_token", row, req, _now(), "")
        if tok is None:
            return None
        self._prov_expiry = _now() + _ttl(tok)
        return tok.access_token

    async def provisioning(self, op: str, row: int, req: Request, intended: float, ok: tuple[int, ...]) -> Reply | None:
        """Create/find a VEN or its resources: with the privileged credential when the target demands one,
        else with the VEN's own token."""
        if self.spec.credentials.provisioning_client_id is None:
            return await self.authed(op, row, req, intended, ok)
        token = await self._provisioner_token(row)
        if token is None:
            return None
        reply = await self.call(op, row, req, intended, token, ok)
        if reply is not None and reply.status == 401:
            self.count("provisioning_token_refresh_on_401")
            token = await self._provisioner_token(row, refresh=True)
            if token is not None:
                reply = await self.call(op, row, req, _now(), token, ok)
        return reply

    async def fetch_token(self, row: int, intended: float, refresh: bool = False) -> bool:
        """The row's VEN's bearer token, as the credential mode gives it: client credentials of its own (prefix +
        name, or its row of a credentials file), of the shared VEN client (its own token, or the worker's one with
        shared_token), or a pre-issued token, which is never fetched (`refresh`: the VTN refused the current one)."""
        creds = self.spec.credentials
        login = creds.login(self.spec.ven_start + row, self._name(row))
        if login.token:
            if refresh:  # nothing to ask for: the VTN refused the token it was given
                self.count("preissued_token_refused")
                return False
            self.token[row] = login.token
            self.ven_token[row] = False
            self.token_expiry[row] = np.inf
            return True
        if creds.shared_token:
            return await self._worker_token(row, intended, refresh)
        req = self.dialect.token(login.client_id, login.secret, token_url=self.token_url)
        tok = await self._token_call("token", row, req, intended, f"{self._name(row)}: ")
        if tok is None:
            return False
        self.token[row] = tok.access_token
        self.ven_token[row] = False
        self.token_expiry[row] = _now() + _ttl(tok)
        return True

    async def _worker_token(self, row: int, intended: float, refresh: bool) -> bool:
        """shared_token: one token of the shared VEN client for every VEN of this worker, fetched by the first VEN
        that needs it (the others wait for the same request), fetched anew when it expires or a VEN's was refused."""
        task = self._shared_token
        if task is not None and task.done():
            got = task.result()
            stale = got is None or _now() > got[1] - TOKEN_REFRESH_MARGIN_S or (refresh and got[0] == self.token[row])
            if stale:
                task = None
        if task is None:
            creds = self.spec.credentials
            login = creds.login(self.spec.ven_start + row, self._name(row))
            req = self.dialect.token(login.client_id, login.secret, token_url=self.token_url)
            task = self._shared_token = asyncio.get_running_loop().create_task(self._fetch_worker_token(row, req, intended))
        got = await asyncio.shield(task)
        if got is None:
            return False
        self.token[row], self.token_expiry[row] = got
        self.ven_token[row] = False
        return True

    async def _fetch_worker_token(self, row: int, req: Request, intended: float) -> tuple[str, float] | None:
        tok = await self._token_call("token", row, req, intended, f"{self._name(row)} (the worker's shared token): ")
        return None if tok is None else (tok.access_token, _now() + _ttl(tok))

    async def _token_call(self, op: str, row: int, req: Request, intended: float, who: str) -> Token | None:
        """POST a token request and parse the token; a refusal or an unreadable body is recorded under op."""
        reply = await self.call(op, row, req, intended, None, (200,))
        if reply is None or reply.status != 200:
            return None
        try:
            return self.dialect.parse_token(decode(reply.body))
        except Failure as f:
            self.rec.fail(op, f.error_class, f"{who}{f.message}")
            return None

    async def discover_token_url(self) -> None:
        """Where VENs ask for tokens: the profile's token_url, or `GET /auth/server` once for the shard (3.1.0, or
        token_url "discover"); its tokenURL serves every VEN. A failure is recorded (operation `auth_server`) and
        VENs fall back to {base}/auth/token."""
        how = self.spec.credentials.token_url
        if how is not None and how != DISCOVER:
            self.token_url = how
            return
        req = Request("GET", "/auth/server") if how == DISCOVER else self.dialect.auth_server()
        if req is None:
            return
        reply = await self.call("auth_server", 0, req, _now(), None, (200,))
        if reply is None or reply.status != 200:
            return
        try:
            self.token_url = self.dialect.parse_auth_server(decode(reply.body))
        except Failure as f:
            self.rec.fail("auth_server", f.error_class, f.message)


def _ttl(tok: Token) -> float:
    return tok.expires_in_s if tok.expires_in_s and tok.expires_in_s > 0 else NO_EXPIRY_S
