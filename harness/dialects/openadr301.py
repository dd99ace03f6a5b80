"""OpenADR 3.0.1 requests and lenient reply parsing (the default dialect).

Pure. Replies are parsed leniently (extra fields, odd types), tolerated oddities are tallied in
`deviations`; what cannot be understood raises `Failure(PROTOCOL, ...)` so the operation is counted
as a protocol deviation, never a crash.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any
from urllib.parse import quote, urlencode

from harness.core.errors import PROTOCOL, Failure
from harness.dialects import (GRANULARITIES, EventInfo, LoadReading, Notification, ProgramInfo, Request, Site, Token,
                              lenient, operations_of, parsing)
from harness.dialects.lenient import Deviations

NAME = "openadr-3.0.1"

REPORT_DESCRIPTORS = [
    {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "KWH"},
    {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "DEMAND", "readingType": "MEAN", "units": "KW"},
]
SIMPLE_DESCRIPTOR = {"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE"}


class OpenADR301:
    name = NAME
    granularities: tuple[str, ...] = GRANULARITIES
    keys = parsing.CAMEL
    tokens_expire = True  # a token response without expires_in is a deviation (the VTN says nothing of its life)

    def __init__(self) -> None:
        self.deviations = Deviations()

    # ---- auth ---------------------------------------------------------------------------------
    def auth_server(self) -> Request | None:
        return None  # 3.0.1 has no discovery: the token endpoint is {base}/auth/token

    def parse_auth_server(self, doc: Any) -> str | None:
        doc = lenient.unwrap_json(doc, self.deviations, "auth server")
        url = doc.get("tokenURL") if isinstance(doc, dict) else None
        if not isinstance(url, str) or not url:
            self.deviations.note(lenient.MISSING_FIELD, "authServerInfo.tokenURL")
            return None
        return url

    def token(self, client_id: str, client_secret: str, scope: str | None = None, token_url: str | None = None) -> Request:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        if scope:
            form["scope"] = scope
        return Request("POST", token_url or "/auth/token", form=form)

    def parse_token(self, doc: Any) -> Token:
        doc = lenient.unwrap_json(doc, self.deviations, "token")
        if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            raise Failure(PROTOCOL, "token response has no access_token")
        if isinstance(doc.get("scope"), list):
            self.deviations.note(lenient.SCOPE_ARRAY, f"token.scope: {doc['scope']!r}")
        exp = doc.get("expires_in")
        if exp is None and self.tokens_expire:
            self.deviations.note(lenient.EXPIRES_IN_MISSING, f"token: {sorted(doc)}")
        elif isinstance(exp, str):
            self.deviations.note(lenient.EXPIRES_IN_STRING, f"token.expires_in: {exp!r}")
        try:
            expires = float(exp) if exp is not None else None
        except (TypeError, ValueError):
            expires = None
        return Token(doc["access_token"], expires)

    def token_from_create_ven(self, doc: Any) -> Token | None:
        return None  # spec VTNs issue tokens only from the auth server

    # ---- provisioning -------------------------------------------------------------------------
    def create_ven(self, ven_name: str) -> Request:
        return Request("POST", "/vens", json={"objectType": "VEN", "venName": ven_name})

    def find_ven(self, ven_name: str) -> Request:
        return Request("GET", f"/vens?venName={quote(ven_name)}")

    def create_resource(self, ven_id: str, resource_name: str) -> Request:
        body = {"objectType": "RESOURCE", "resourceName": resource_name, "venID": ven_id}
        return Request("POST", f"/vens/{quote(ven_id)}/resources", json=body)

    def parse_id(self, doc: Any) -> str:
        doc = lenient.unwrap_json(doc, self.deviations, "created object")
        oid = lenient.object_id(doc.get("id"), self.deviations) if isinstance(doc, dict) else None
        if oid is not None:
            return oid
        raise Failure(PROTOCOL, f"created object has no id: {str(doc)[:80]}")

    def parse_first_id(self, doc: Any) -> str | None:
        for item in self.parse_list(doc):
            oid = lenient.object_id(item.get("id"), self.deviations)
            if oid is not None:
                return oid
        return None

    def parse_list(self, doc: Any) -> list[dict[str, Any]]:
        doc = lenient.unwrap_json(doc, self.deviations, "list")
        if doc is None:
            return []
        if not isinstance(doc, list):
            raise Failure(PROTOCOL, f"expected a JSON array, got {type(doc).__name__}")
        return [d for d in doc if isinstance(d, dict)]

    # ---- programs and events ------------------------------------------------------------------
    def find_program(self, program_name: str, skip: int = 0, limit: int = 50) -> Request:
        # 3.0.1 has no programName filter; callers page through /programs and match the name.
        return Request("GET", f"/programs?skip={skip}&limit={limit}")

    def create_program(self, program_name: str) -> Request:
        body = {"objectType": "PROGRAM", "programName": program_name, "payloadDescriptors": [SIMPLE_DESCRIPTOR]}
        return Request("POST", "/programs", json=body)

    def parse_programs(self, doc: Any) -> list[ProgramInfo]:
        return parsing.programs(doc, self.keys, self.deviations)

    def find_events(self, program_id: str, skip: int = 0, limit: int = 50) -> Request:
        return Request("GET", f"/events?{urlencode({'programID': program_id, 'skip': skip, 'limit': limit})}")

    def read_event(self, event_id: str) -> Request:
        return Request("GET", f"/events/{quote(event_id)}")

    def create_event(self, program_id: str, event_name: str, start_iso: str, duration_iso: str, level: int) -> Request:
        k = self.keys
        body = {
            **self._object_type("EVENT"),
            k.program_id: program_id,
            k.event_name: event_name,
            k.interval_period: {"start": start_iso, "duration": duration_iso},
            **self._event_descriptors(),
            "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [level]}]}],
        }
        return Request("POST", "/events", json=body)

    def _object_type(self, name: str) -> dict[str, str]:
        """The objectType a 3.0 body carries (3.1.0 bodies carry none: the server owns it)."""
        return {"objectType": name}

    def _event_descriptors(self) -> dict[str, Any]:
        """What a created event says of its payloads (a dialect whose VTN takes no descriptors sends nothing)."""
        return {"payloadDescriptors": [SIMPLE_DESCRIPTOR]}

    def parse_events(self, doc: Any) -> list[EventInfo]:
        return parsing.events(doc, self.keys, self.deviations)

    # ---- subscriptions and notifications ------------------------------------------------------
    def subscribe(self, program_id: str | None, client_name: str, callback_url: str, bearer_token: str | None,
                  objects: Sequence[str], operations_vocab: str) -> Request:
        op: dict[str, Any] = {
            "objects": list(objects),
            "operations": operations_of(operations_vocab),
            "callbackUrl": callback_url,
        }
        if bearer_token:
            op["bearerToken"] = bearer_token
        body: dict[str, Any] = {**self._subscription_head(), "clientName": client_name}
        if program_id is not None:
            body["programID"] = program_id
        body["objectOperations"] = [op]
        return Request("POST", "/subscriptions", json=body)

    def _subscription_head(self) -> dict[str, Any]:
        return {"objectType": "SUBSCRIPTION"}

    def unsubscribe(self, subscription_id: str) -> Request:
        return Request("DELETE", f"/subscriptions/{quote(subscription_id)}")

    def parse_notification(self, doc: Any) -> Notification | None:
        return parsing.notification(doc, self.keys, self.deviations)

    # ---- reports ------------------------------------------------------------------------------
    def report(self, program_id: str, event_id: str, client_name: str, sites: list[Site], start_iso: str,
               duration_iso: str) -> Request:
        """One report holding every given resource (the "ven" granularity building block)."""
        return self._report(program_id, event_id, client_name, f"{client_name} telemetry", sites, start_iso, duration_iso)

    def reports(self, program_id: str, event_id: str, client_name: str, sites: list[Site],
                loads: list[LoadReading] | None, start_iso: str, duration_iso: str, granularity: str) -> list[Request]:
        """The reports of one VEN for one interval: one ("ven"), one per resource, or one per load (its
        resourceName is the load's site, its reportName the load's name)."""
        args = (program_id, event_id, client_name)
        if granularity == "ven":
            return [self.report(*args, sites, start_iso, duration_iso)]
        if granularity == "resource":
            return [self._report(*args, f"{client_name} {s.name}", [s], start_iso, duration_iso) for s in sites]
        if granularity == "load":
            if loads is None:
                raise ValueError("report granularity 'load' needs load readings, got none")
            return [
                self._report(*args, ld.load_name, [Site(ld.site_name, ld.energy_kwh, ld.power_kw)], start_iso, duration_iso)
                for ld in loads
            ]
        raise ValueError(f"granularity must be one of {', '.join(GRANULARITIES)}, got {granularity!r}")

    def _report_head(self, program_id: str, event_id: str, client_name: str) -> dict[str, Any]:
        return {"objectType": "REPORT", "programID": program_id, "eventID": event_id, "clientName": client_name}

    def _report(
        self, program_id: str, event_id: str, client_name: str, report_name: str, sites: list[Site], start_iso: str, duration_iso: str
    ) -> Request:
        body = {
            **self._report_head(program_id, event_id, client_name),
            "reportName": report_name,
            "payloadDescriptors": REPORT_DESCRIPTORS,
            "resources": [
                {
                    "resourceName": s.name,
                    "intervalPeriod": {"start": start_iso, "duration": duration_iso},
                    "intervals": [
                        {
                            "id": 0,
                            "payloads": [
                                {"type": "USAGE", "values": [round(s.energy_kwh, 6)]},
                                {"type": "DEMAND", "values": [round(s.power_kw, 4)]},
                            ],
                        }
                    ],
                }
                for s in sites
            ],
        }
        return Request("POST", "/reports", json=body)

    # ---- errors -------------------------------------------------------------------------------
    def parse_problem(self, status: int, body_doc: Any) -> str:
        return lenient.describe_problem(status, body_doc, self.deviations)
