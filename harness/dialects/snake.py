"""`snake-case-example`: a non-spec VTN dialect, shipped as the worked example of a plug-in dialect.

Pure. The VTN it speaks (modelled on one in production) uses snake_case fields (`ven_name`, `client_name`,
`report_type`, `reading_type`), answers `POST /vens` with a per-VEN `auth_token` that the VEN then uses for
everything else, and takes one flat report per load reading (`POST /reports` per load, granularity "load").

Writing a dialect for another VTN
---------------------------------
1. Write a class with the methods of `harness.dialects.Dialect` (a `typing.Protocol`: no base class needed).
   Every method is pure: build a `Request(method, path, json=.. | form=..)` with a path relative to the
   target's base URL, or read an already-decoded JSON document. Never do I/O, never read the clock.
   Subclassing `OpenADR301` (as here) and overriding what differs is the short way.
2. Parse leniently: return None / a default for an odd value and note it in `self.deviations`
   (`harness.dialects.lenient` has the shared helpers: timestamps, durations, ids, error bodies); raise
   `Failure(PROTOCOL, ..)` only when a reply cannot be used at all. The worker counts both, a VEN never crashes.
3. Declare `granularities` (the report granularities the VTN accepts, the first one the default) and, if
   the VTN hands out per-VEN tokens, return them from `token_from_create_ven`.
4. Register it under a name, either in code before the run starts::

       from harness import dialects
       dialects.register("my-vtn", MyVtnDialect)      # a zero-argument factory

   or, for an installed package, with an entry point (found by `harness.dialects.get`)::

       [project.entry-points."harness.dialects"]
       my-vtn = "my_package.dialect:MyVtnDialect"

   then select it per target: `[target] dialect = "my-vtn"` in a profile.
5. Test it like tests/dialects/test_snake_dialect.py does: a small aiohttp server that speaks the VTN's language on
   127.0.0.1 port 0, and the dialect's request flow sent through the real transport.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from harness.dialects import LoadReading, Request, Site, Token, lenient, operations_of, parsing
from harness.dialects.openadr301 import OpenADR301

NAME = "snake-case-example"
KEYS = parsing.Keys(
    program_id="program_id",
    program_name="program_name",
    event_name="event_name",
    interval_period="interval_period",
    randomize_start="randomize_start",
    event_duration="duration",
    created="created_at",
    modified="",  # this VTN keeps no modification time: not a deviation
    object_type="object_type",
    operation="operation",
    object="object",
)


class SnakeCase(OpenADR301):
    """Token, id and list parsing are the spec's (OAuth2 is snake_case anyway); everything else differs."""

    name = NAME
    granularities: tuple[str, ...] = ("load",)
    keys = KEYS
    tokens_expire = False  # its tokens never expire: no expires_in is native, not a deviation

    def token_from_create_ven(self, doc: Any) -> Token | None:
        """The per-VEN token in a `POST /vens` reply (or in a `GET /vens?ven_name=` listing after a 409)."""
        doc = lenient.unwrap_json(doc, self.deviations, "ven")
        if isinstance(doc, list):
            doc = next((d for d in doc if isinstance(d, dict) and d.get("auth_token")), None)
        if not isinstance(doc, dict) or not isinstance(doc.get("auth_token"), str) or not doc["auth_token"]:
            self.deviations.note(lenient.MISSING_FIELD, "ven.auth_token")
            return None
        return Token(doc["auth_token"], None)  # valid until the VEN is deleted

    def create_ven(self, ven_name: str) -> Request:
        return Request("POST", "/vens", json={"ven_name": ven_name})

    def find_ven(self, ven_name: str) -> Request:
        return Request("GET", f"/vens?ven_name={quote(ven_name)}")

    def create_resource(self, ven_id: str, resource_name: str) -> Request:
        return Request("POST", f"/vens/{quote(ven_id)}/resources", json={"resource_name": resource_name, "ven_id": ven_id})

    def create_program(self, program_name: str) -> Request:
        return Request("POST", "/programs", json={"program_name": program_name})

    def find_events(self, program_id: str, skip: int = 0, limit: int = 50) -> Request:
        return Request("GET", f"/events?{urlencode({'program_id': program_id, 'skip': skip, 'limit': limit})}")

    def _object_type(self, name: str) -> dict[str, str]:
        """Its bodies name no objectType (`create_event` is OpenADR301's, in this VTN's field names: `keys`)."""
        return {}

    def _event_descriptors(self) -> dict[str, Any]:
        """Its events carry no payload descriptors."""
        return {}

    def subscribe(self, program_id: str | None, client_name: str, callback_url: str, bearer_token: str | None,
                  objects: Sequence[str], operations_vocab: str) -> Request:
        op = {
            "objects": list(objects),
            "operations": operations_of(operations_vocab),
            "callback_url": callback_url,
            "bearer_token": bearer_token,
        }
        body = {"client_name": client_name, "program_id": program_id, "object_operations": [op]}
        return Request("POST", "/subscriptions", json=body)

    def report(self, program_id: str, event_id: str, client_name: str, sites: list[Site], start_iso: str,
               duration_iso: str) -> Request:
        """A single site's reading as one report; this VTN has no multi-resource report (use `reports`)."""
        if len(sites) != 1:
            raise ValueError(f"{NAME} takes one report per reading: use reports(), got {len(sites)} sites")
        s = sites[0]
        return self._load_report(program_id, event_id, client_name, LoadReading(s.name, s.name, "site", s.energy_kwh, s.power_kw), start_iso, duration_iso)

    def reports(self, program_id: str, event_id: str, client_name: str, sites: list[Site],
                loads: list[LoadReading] | None, start_iso: str, duration_iso: str, granularity: str) -> list[Request]:
        """One POST per load reading whatever the granularity asked (without load readings, one per site)."""
        readings = loads if loads is not None else [LoadReading(s.name, s.name, "site", s.energy_kwh, s.power_kw) for s in sites]
        return [self._load_report(program_id, event_id, client_name, r, start_iso, duration_iso) for r in readings]

    def _load_report(
        self, program_id: str, event_id: str, client_name: str, r: LoadReading, start_iso: str, duration_iso: str
    ) -> Request:
        body = {
            "client_name": client_name,
            "program_id": program_id,
            "event_id": event_id,
            "resource_name": r.site_name,
            "load_name": r.load_name,
            "load_type": r.kind,
            "report_type": "USAGE",
            "reading_type": "DIRECT_READ",
            "start": start_iso,
            "duration": duration_iso,
            "energy_kwh": round(r.energy_kwh, 6),
            "power_kw": round(r.power_kw, 4),
        }
        return Request("POST", "/reports", json=body)

    def parse_problem(self, status: int, body_doc: Any) -> str:
        return lenient.describe_problem(status, body_doc, self.deviations, native_keys=("error", "message"))
