"""OpenADR 3.0.1 requests and lenient reply parsing (the default dialect).

Pure. Replies are parsed leniently (extra fields, odd types); what cannot be understood raises
`Failure(PROTOCOL, ...)` so the operation is counted as a protocol deviation, never a crash.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import quote, urlencode

from harness.dialects import Request, Site, Token
from harness.errors import PROTOCOL, Failure

NAME = "openadr-3.0.1"

REPORT_DESCRIPTORS = [
    {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE", "readingType": "DIRECT_READ", "units": "KWH"},
    {"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "DEMAND", "readingType": "MEAN", "units": "KW"},
]




class OpenADR301:
    name = NAME

    def token(self, client_id: str, client_secret: str, scope: str | None = None) -> Request:
        form = {"grant_type": "client_credentials", "client_id": client_id, "client_secret": client_secret}
        if scope:
            form["scope"] = scope
        return Request("POST", "/auth/token", form=form)

    def parse_token(self, doc: Any) -> Token:
        if not isinstance(doc, dict) or not isinstance(doc.get("access_token"), str):
            raise Failure(PROTOCOL, "token response has no access_token")
        exp = doc.get("expires_in")
        try:
            expires = float(exp) if exp is not None else None
        except (TypeError, ValueError):
            expires = None
        return Token(doc["access_token"], expires)

    def create_ven(self, ven_name: str) -> Request:
        return Request("POST", "/vens", json={"objectType": "VEN", "venName": ven_name})

    def find_ven(self, ven_name: str) -> Request:
        return Request("GET", f"/vens?venName={quote(ven_name)}")

    def create_resource(self, ven_id: str, resource_name: str) -> Request:
        body = {"objectType": "RESOURCE", "resourceName": resource_name, "venID": ven_id}
        return Request("POST", f"/vens/{quote(ven_id)}/resources", json=body)

    def find_resource(self, ven_id: str, resource_name: str) -> Request:
        return Request("GET", f"/vens/{quote(ven_id)}/resources?resourceName={quote(resource_name)}")

    def parse_id(self, doc: Any) -> str:
        if isinstance(doc, dict) and doc.get("id") is not None:
            return str(doc["id"])
        raise Failure(PROTOCOL, f"created object has no id: {str(doc)[:80]}")

    def parse_first_id(self, doc: Any) -> str | None:
        items = self.parse_list(doc)
        for item in items:
            if item.get("id") is not None:
                return str(item["id"])
        return None

    def parse_list(self, doc: Any) -> list[dict[str, Any]]:
        if doc is None:
            return []
        if not isinstance(doc, list):
            raise Failure(PROTOCOL, f"expected a JSON array, got {type(doc).__name__}")
        return [d for d in doc if isinstance(d, dict)]

    def find_program(self, program_name: str) -> Request:
        # 3.0.1 has no programName filter; callers page through /programs.
        return Request("GET", "/programs?limit=50")

    def create_program(self, program_name: str) -> Request:
        body = {
            "objectType": "PROGRAM",
            "programName": program_name,
            "payloadDescriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE"}],
        }
        return Request("POST", "/programs", json=body)

    def find_events(self, program_id: str, skip: int = 0, limit: int = 50) -> Request:
        return Request("GET", f"/events?{urlencode({'programID': program_id, 'skip': skip, 'limit': limit})}")

    def create_event(self, program_id: str, event_name: str, start_iso: str, duration_iso: str, level: int) -> Request:
        body = {
            "objectType": "EVENT",
            "programID": program_id,
            "eventName": event_name,
            "intervalPeriod": {"start": start_iso, "duration": duration_iso},
            "payloadDescriptors": [{"objectType": "EVENT_PAYLOAD_DESCRIPTOR", "payloadType": "SIMPLE"}],
            "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [level]}]}],
        }
        return Request("POST", "/events", json=body)

    def report(
        self,
        program_id: str,
        event_id: str,
        client_name: str,
        sites: list[Site],
        start_iso: str,
        duration_iso: str,
    ) -> Request:
        body = {
            "objectType": "REPORT",
            "programID": program_id,
            "eventID": event_id,
            "clientName": client_name,
            "reportName": f"{client_name} telemetry",
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
