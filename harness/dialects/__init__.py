"""Dialects map the same simulated facts to one VTN flavour's requests and parse its replies leniently.

Pure: a dialect builds `Request`s (method, path, JSON-able body) and parses decoded reply documents;
it never does I/O and never encodes bytes (the transport does, with orjson). Odd replies are tolerated and
tallied in the dialect's `deviations`; what cannot be understood at all raises `Failure(PROTOCOL, ...)`.

Plug-in point: `register(name, factory)`, or an entry point in the group `harness.dialects` (name → a
zero-argument factory); `get(name)` returns a fresh dialect or raises ValueError. How to write one:
see harness/dialects/snake.py.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

from harness.dialects.lenient import Deviation, Deviations

__all__ = [
    "Deviation", "Deviations", "Dialect", "EventInfo", "GRANULARITIES", "LoadReading", "Notification",
    "OPERATION_VOCABULARIES", "ProgramInfo", "Request", "Signal", "Site", "Token", "get", "names", "register",
    "operations_of", "resolve_granularity", "sites_from_loads",
]

GRANULARITIES = ("ven", "resource", "load")  # one report per VEN per interval | per resource | per load
# Subscription operations: "crud" as the 3.0.1/3.1.0 schemas say; "http" as 3.0.0 and most implementations.
OPERATION_VOCABULARIES: dict[str, tuple[str, ...]] = {
    "crud": ("CREATE", "UPDATE", "DELETE"),
    "http": ("POST", "PUT", "DELETE"),
}


def operations_of(vocab: str) -> list[str]:
    """The operations a subscription asks to be notified of, in the named vocabulary (ValueError if unknown)."""
    if vocab not in OPERATION_VOCABULARIES:
        raise ValueError(f"operations must be one of {', '.join(OPERATION_VOCABULARIES)}, got {vocab!r}")
    return list(OPERATION_VOCABULARIES[vocab])


# Request and Site are built for every report (thousands a second per worker): NamedTuples, immutable like the
# frozen dataclasses around them but built in half the time (a frozen dataclass sets each field through
# object.__setattr__).
class Request(NamedTuple):
    """One HTTP request as data; the transport (an edge) encodes `json` or `form` on the wire."""

    method: str
    # Relative to the target's base URL, starting with "/"; an absolute http(s) URL (a discovered
    # 3.1.0 tokenURL) is used as is.
    path: str
    json: Any = None
    form: dict[str, str] | None = None


class Site(NamedTuple):
    """One resource's readings over one report interval."""

    name: str
    energy_kwh: float
    power_kw: float


@dataclass(frozen=True)
class LoadReading:
    """One load component's readings over one report interval (the "load" report granularity)."""

    site_name: str
    load_name: str
    kind: str  # harness.core.fleet.LOAD_KINDS
    energy_kwh: float
    power_kw: float


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in_s: float | None


@dataclass(frozen=True)
class Signal:
    """What an event asks, reduced to what a simulated VEN acts on: the first interval's payload
    (SIMPLE preferred) and, for SIMPLE, its level 0..3."""

    payload_type: str  # SIMPLE, PRICE, DISPATCH_SETPOINT, ... ("" when the event carries none)
    values: tuple[Any, ...]
    level: int | None  # SIMPLE level; None for other payloads or an unreadable value
    n_intervals: int


@dataclass(frozen=True)
class EventInfo:
    id: str
    program_id: str
    event_name: str | None
    start_epoch_s: float | None  # None: unknown, or "now" (the spec's 0001-01-01)
    duration_s: float | None  # math.inf for the spec's P9999Y
    signal: Signal
    created_epoch_s: float | None
    targets: tuple[str, ...]  # target values (3.0.1 valuesMaps flattened); () targets everyone
    randomize_start_s: float = 0.0  # intervalPeriod.randomizeStart: each VEN starts up to this much later


@dataclass(frozen=True)
class ProgramInfo:
    id: str
    program_name: str | None


@dataclass(frozen=True)
class Notification:
    """A webhook notification; `operation` normalised to CREATE/READ/UPDATE/DELETE (HTTP verbs mapped),
    "UNKNOWN" when missing."""

    object_type: str
    operation: str
    object: dict[str, Any]
    targets: tuple[str, ...] = ()


class Dialect(Protocol):
    name: str
    granularities: tuple[str, ...]  # supported report granularities; the first is the default
    deviations: Deviations  # tolerated oddities in replies, drained by the worker

    # ---- auth ----
    def auth_server(self) -> Request | None: ...  # 3.1.0 GET /auth/server discovery; None: not in this dialect
    def parse_auth_server(self, doc: Any) -> str | None: ...  # the tokenURL
    def token(self, client_id: str, client_secret: str, scope: str | None = None, token_url: str | None = None) -> Request: ...
    def parse_token(self, doc: Any) -> Token: ...
    def token_from_create_ven(self, doc: Any) -> Token | None: ...  # a per-VEN token in the POST /vens reply
    # ---- provisioning ----
    def create_ven(self, ven_name: str) -> Request: ...
    def find_ven(self, ven_name: str) -> Request: ...
    def create_resource(self, ven_id: str, resource_name: str) -> Request: ...
    def parse_id(self, doc: Any) -> str: ...
    def parse_first_id(self, doc: Any) -> str | None: ...
    def parse_list(self, doc: Any) -> list[dict[str, object]]: ...
    # ---- programs and events ----
    def find_program(self, program_name: str, skip: int = 0, limit: int = 50) -> Request: ...  # one page
    def create_program(self, program_name: str) -> Request: ...
    def parse_programs(self, doc: Any) -> list[ProgramInfo]: ...
    def find_events(self, program_id: str, skip: int = 0, limit: int = 50) -> Request: ...
    def read_event(self, event_id: str) -> Request: ...
    def create_event(self, program_id: str, event_name: str, start_iso: str, duration_iso: str, level: int) -> Request: ...
    def parse_events(self, doc: Any) -> list[EventInfo]: ...
    # ---- subscriptions and notifications ----
    def subscribe(self, program_id: str | None, client_name: str, callback_url: str, bearer_token: str | None,
                  objects: Sequence[str], operations_vocab: str) -> Request: ...
    def unsubscribe(self, subscription_id: str) -> Request: ...
    def parse_notification(self, doc: Any) -> Notification | None: ...
    # ---- reports ----
    def report(self, program_id: str, event_id: str, client_name: str, sites: list[Site], start_iso: str,
               duration_iso: str) -> Request: ...
    def reports(self, program_id: str, event_id: str, client_name: str, sites: list[Site],
                loads: list[LoadReading] | None, start_iso: str, duration_iso: str, granularity: str) -> list[Request]: ...
    # ---- errors ----
    def parse_problem(self, status: int, body_doc: Any) -> str: ...


def sites_from_loads(loads: Sequence[LoadReading]) -> list[Site]:
    """Per-site sums of load readings, sites in first-seen order."""
    energy: dict[str, float] = {}
    power: dict[str, float] = {}
    for ld in loads:
        energy[ld.site_name] = energy.get(ld.site_name, 0.0) + ld.energy_kwh
        power[ld.site_name] = power.get(ld.site_name, 0.0) + ld.power_kw
    return [Site(name, energy[name], power[name]) for name in energy]


def resolve_granularity(dialect: Dialect, requested: str | None) -> str:
    """The report granularity to use: the dialect's default when none is requested; an unsupported one is
    a one-line ValueError naming the key."""
    if requested is None:
        return dialect.granularities[0]
    if requested not in GRANULARITIES:
        raise ValueError(f"target.granularity must be one of {', '.join(GRANULARITIES)}, got {requested!r}")
    if requested not in dialect.granularities:
        raise ValueError(
            f"target.granularity {requested!r} is not supported by dialect {dialect.name} "
            f"(supports: {', '.join(dialect.granularities)})"
        )
    return requested


_REGISTRY: dict[str, Callable[[], Dialect]] = {}
_BROKEN: dict[str, str] = {}  # entry points that failed to load: name -> why
_loaded = False


def register(name: str, factory: Callable[[], Dialect]) -> None:
    """Make a dialect available by name (a later registration of the same name replaces the earlier one)."""
    _REGISTRY[name] = factory


def names() -> list[str]:
    _load()
    return sorted(_REGISTRY)


def get(name: str) -> Dialect:
    _load()
    if name in _BROKEN and name not in _REGISTRY:
        raise ValueError(f"dialect {name!r} failed to load: {_BROKEN[name]}")
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(f"dialect must be one of {', '.join(sorted(_REGISTRY))}, got {name!r}") from None


def _load() -> None:
    global _loaded
    if _loaded:
        return
    _loaded = True
    from harness.dialects import openadr301, openadr310, snake

    for name, factory in (
        (openadr301.NAME, openadr301.OpenADR301),
        (openadr310.NAME, openadr310.OpenADR310),
        (snake.NAME, snake.SnakeCase),
    ):
        _REGISTRY.setdefault(name, factory)
    from importlib.metadata import entry_points

    for ep in entry_points(group="harness.dialects"):
        if ep.name in _REGISTRY:
            continue
        try:
            _REGISTRY[ep.name] = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plug-in is reported when it is asked for
            _BROKEN[ep.name] = f"{type(exc).__name__}: {exc}"[:200]
