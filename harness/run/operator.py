"""The operator (business-logic) role, for the run set-up: probe the target, find or create the program
and event that reports reference.

Edge, deliberately blocking (harness.net.blocking): the run's main process owns no event loop, session or thread.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable
from typing import Any

from harness.core import errors
from harness.core.errors import Failure
from harness.core.exits import SetupFailed, TargetUnreachable
from harness.core.refusal import not_openadr, tls_hint
from harness.core.simclock import iso_duration, rfc3339
from harness.core.targeting import event_targets
from harness.dialects import Dialect, Request
from harness.net.blocking import HttpReply, call
from harness.net.wire import decode

SETUP_ATTEMPTS = 5
RETRY_STATUSES = (429, 502, 503, 504)
PAGE = 50  # objects per listing page (OpenADR servers cap limit at 50)


class Operator:
    """Holds a BL token; each method is one blocking call with a clear error on failure."""

    def __init__(
        self, base_url: str, dialect: Dialect, client_id: str, secret: str, timeout_s: float = 10.0,
        ssl_context: ssl.SSLContext | None = None,
    ):
        self.base_url = base_url
        self.dialect = dialect
        self.client_id = client_id
        self._secret = secret
        self.timeout_s = timeout_s
        self._ssl = ssl_context
        self._token: str | None = None
        # Transient failures (reset, timeout, 429, 502-504) the setup calls met, the reachability probe's included
        # (summary counter setup_transient_failures): an injected fault is counted by a VEN or here.
        self.transient_failures = 0
        self.token_url: str | None = None  # a discovered 3.1.0 tokenURL; None: {base}/auth/token
        self.dr_sent_epoch_s = 0.0  # when the latest DR event's POST was sent

    def _call(self, req: Request, token: str | None = None, timeout_s: float | None = None) -> HttpReply:
        return call(self.base_url, req, token, self.timeout_s if timeout_s is None else timeout_s, self._ssl)

    def discover_token_url(self, how: str | None = None) -> None:
        """3.1.0 (or `how` = "discover"): `GET /auth/server` names the token endpoint; a dialect without discovery
        keeps {base}/auth/token; `how` a URL or path: the profile's token_url, used as given."""
        if how is not None and how != "discover":
            self.token_url = how
            return
        req = Request("GET", "/auth/server") if how == "discover" else self.dialect.auth_server()
        if req is None:
            return
        r = self._call(req)
        if r.status != 200:
            raise SetupFailed(f"auth server discovery: HTTP {r.status} {r.body[:120]!r}")
        try:
            self.token_url = self.dialect.parse_auth_server(decode(r.body))
        except Failure as f:
            raise SetupFailed(f"auth server discovery: {f}") from None

    def wait_reachable(self, window_s: float) -> None:
        """Retry the token endpoint until it answers at all (any HTTP status), for at most window_s."""
        deadline = time.monotonic() + window_s
        delay = 0.1
        last = ""
        while True:
            try:
                r = self._call(self.dialect.token("probe", "probe"), timeout_s=min(self.timeout_s, 5.0))
            except Failure as f:
                if f.error_class == errors.TLS:  # a certificate does not become trusted by asking again
                    raise TargetUnreachable(tls_hint(self.base_url, f.message)) from None
                last = f.message
                self.transient_failures += 1
            else:
                if (page := not_openadr(self.base_url, r.status, r.content_type, r.body)) is not None:
                    raise SetupFailed(page)
                self.transient_failures += r.status in RETRY_STATUSES
                return
            if time.monotonic() + delay > deadline:
                raise TargetUnreachable(f"target {self.base_url} unreachable after {window_s:g}s: {last}")
            time.sleep(delay)  # the supervisor has nothing else to do before its workers exist
            delay = min(delay * 2, 1.0)

    def _retrying(self, req: Request, what: str, token: str | None = None) -> HttpReply:
        """One setup call, retried on what a faulty or overloaded VTN does (reset, timeout, 429, 502-504) a few
        times; a transport failure that persists is a SetupFailed naming the call, never a traceback."""
        delay = 0.2
        for attempt in range(1, SETUP_ATTEMPTS + 1):
            try:
                r = self._call(req, token)
            except Failure as f:
                if attempt == SETUP_ATTEMPTS:
                    raise SetupFailed(f"{what}: {f.message} ({attempt} attempts)") from None
            else:
                if r.status not in RETRY_STATUSES or attempt == SETUP_ATTEMPTS:
                    return r
            self.transient_failures += 1
            time.sleep(delay)
            delay = min(delay * 2, 1.0)
        raise AssertionError("unreachable")  # pragma: no cover

    def _authed(self, req: Request, what: str, ok: tuple[int, ...]) -> HttpReply:
        if self._token is None:
            r = self._retrying(self.dialect.token(self.client_id, self._secret, token_url=self.token_url),
                               "business-logic token")
            if r.status != 200:
                raise SetupFailed(f"business-logic token for client {self.client_id!r} refused: HTTP {r.status} {r.body[:120]!r}")
            self._token = self.dialect.parse_token(decode(r.body)).access_token
        r = self._retrying(req, what, self._token)
        if r.status not in ok:
            raise SetupFailed(f"{what}: HTTP {r.status} {r.body[:160]!r}")
        return r

    def read(self, req: Request, what: str) -> HttpReply:
        """One authorised read (200 or SetupFailed), retried on transient failures; a token the VTN no longer
        takes (401, e.g. expired during a long delivery audit) is fetched again once."""
        try:
            return self._authed(req, what, (200,))
        except SetupFailed:
            if self._token is None:
                raise
            self._token = None
            return self._authed(req, what, (200,))

    def _find(self, page: Callable[[int], Request], what: str, names_ids: Callable[[Any], list[tuple[str | None, str]]],
              name: str) -> str | None:
        """The id of the first object named `name`, reading every page of a listing; None if there is none."""
        skip = 0
        while True:
            doc = decode(self._authed(page(skip), what, (200,)).body)
            found = names_ids(doc)
            for obj_name, obj_id in found:
                if obj_name == name:
                    return obj_id
            if _page_len(doc, found) < PAGE:
                return None
            skip += PAGE

    def ensure_program(self, name: str) -> str:
        """Find the program by name (paging) or create it; return its id."""
        try:
            found = self._find(lambda skip: self.dialect.find_program(name, skip=skip, limit=PAGE), "list programs",
                               lambda doc: [(p.program_name, p.id) for p in self.dialect.parse_programs(doc)], name)
            if found is not None:
                return found
            r = self._authed(self.dialect.create_program(name), f"create program {name!r}", (200, 201))
            return self.dialect.parse_id(decode(r.body))
        except Failure as f:
            raise SetupFailed(f"program {name!r}: {f}") from None

    def create_dr_event(
        self, program_id: str, event_name: str, start_epoch_s: float, duration_s: float, level: int,
        ven_names: list[str] | None,
    ) -> str:
        """A demand-response event (SIMPLE level) for these VENs (None: the whole program); its id."""
        req = self.dialect.create_event(program_id, event_name, rfc3339(start_epoch_s), iso_duration(duration_s), level)
        targets: list[Any] | None = event_targets(ven_names)
        if targets is not None and getattr(self.dialect, "string_targets", False):
            targets = [self._grant(event_name, set(ven_names or ()))]
        if targets is not None and isinstance(req.json, dict):
            req.json["targets"] = targets
        self.dr_sent_epoch_s = time.time()  # the fan-out's zero: after any 3.1.0 target grants, as the POST leaves
        try:
            return self.dialect.parse_id(decode(self._authed(req, f"create DR event {event_name!r}", (200, 201)).body))
        except Failure as f:
            raise SetupFailed(f"DR event {event_name!r}: {f}") from None

    def _grant(self, target: str, ven_names: set[str]) -> str:
        """3.1.0: give the VEN records of these VENs the target string (as business logic does), reading every page
        of GET /vens; the target the event then carries."""
        d: Any = self.dialect
        skip, records = 0, []
        while True:
            page = self.dialect.parse_list(decode(self._authed(d.list_vens(skip, PAGE), "list vens", (200,)).body))
            records += [v for v in page if v.get("venName") in ven_names]
            if len(page) < PAGE:
                break
            skip += PAGE
        for ven in records:
            self._authed(d.grant_target(ven, target), f"target ven {ven.get('venName')!r}", (200,))
        return target

    def ensure_event(self, program_id: str, event_name: str, now_epoch_s: float) -> str:
        """The event that reports answer: the first event of the program with that name, or a new one."""
        try:
            found = self._find(lambda skip: self.dialect.find_events(program_id, skip=skip, limit=PAGE), "list events",
                               lambda doc: [(ev.event_name, ev.id) for ev in self.dialect.parse_events(doc)], event_name)
            if found is not None:
                return found
            req = self.dialect.create_event(program_id, event_name, rfc3339(now_epoch_s), iso_duration(86400), 0)
            r = self._authed(req, f"create event {event_name!r}", (200, 201))
            return self.dialect.parse_id(decode(r.body))
        except Failure as f:
            raise SetupFailed(f"event {event_name!r}: {f}") from None


def _page_len(doc: Any, parsed: list[Any]) -> int:
    """Objects on a page as the VTN sent them (parsing drops those without an id): a full page means more may follow."""
    return len(doc) if isinstance(doc, list) else len(parsed)
