"""Dialects map the same simulated facts to one VTN flavour's requests and parse its replies leniently.

Pure: a dialect builds `Request`s (method, path, JSON-able body) and parses decoded reply documents;
it never does I/O and never encodes bytes (the transport does, with orjson). Plug-in point: `register(name, factory)`; `get(name)` returns a dialect or raises ValueError.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol


@dataclass(frozen=True)
class Request:
    """One HTTP request as data; the transport (an edge) encodes `json` or `form` on the wire."""

    method: str
    path: str  # relative to the target's base URL, starting with "/"
    json: Any = None
    form: dict[str, str] | None = None


@dataclass(frozen=True)
class Site:
    """One resource's readings over one report interval."""

    name: str
    energy_kwh: float
    power_kw: float


@dataclass(frozen=True)
class Token:
    access_token: str
    expires_in_s: float | None


class Dialect(Protocol):
    name: str

    def token(self, client_id: str, client_secret: str, scope: str | None = None) -> Request: ...
    def parse_token(self, doc: Any) -> Token: ...
    def create_ven(self, ven_name: str) -> Request: ...
    def find_ven(self, ven_name: str) -> Request: ...
    def create_resource(self, ven_id: str, resource_name: str) -> Request: ...
    def find_resource(self, ven_id: str, resource_name: str) -> Request: ...
    def parse_id(self, doc: Any) -> str: ...
    def parse_first_id(self, doc: Any) -> str | None: ...
    def find_program(self, program_name: str) -> Request: ...
    def create_program(self, program_name: str) -> Request: ...
    def find_events(self, program_id: str, skip: int = 0, limit: int = 50) -> Request: ...
    def create_event(self, program_id: str, event_name: str, start_iso: str, duration_iso: str, level: int) -> Request: ...
    def parse_list(self, doc: Any) -> list[dict[str, object]]: ...
    def report(
        self,
        program_id: str,
        event_id: str,
        client_name: str,
        sites: list[Site],
        start_iso: str,
        duration_iso: str,
    ) -> Request: ...


_REGISTRY: dict[str, Callable[[], Dialect]] = {}


def register(name: str, factory: Callable[[], Dialect]) -> None:
    _REGISTRY[name] = factory


def names() -> list[str]:
    _load_builtin()
    return sorted(_REGISTRY)


def get(name: str) -> Dialect:
    _load_builtin()
    try:
        return _REGISTRY[name]()
    except KeyError:
        raise ValueError(f"dialect must be one of {', '.join(sorted(_REGISTRY))}, got {name!r}") from None


def _load_builtin() -> None:
    if not _REGISTRY:
        from harness.dialects import openadr301

        register(openadr301.NAME, openadr301.OpenADR301)
