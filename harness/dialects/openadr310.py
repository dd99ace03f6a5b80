"""OpenADR 3.1.0 requests (not backwards compatible with 3.0.1) and the same lenient reply parsing.

Pure. What changes from 3.0.1: resources are top-level (`/resources` with `venID`), a VEN creates itself and
its resources with `VEN_VEN_REQUEST` / `VEN_RESOURCE_REQUEST` bodies, reports carry no programID, request
bodies carry no server-owned `objectType`, targets are plain strings, and `GET /auth/server` names the
token endpoint.
"""

from __future__ import annotations

from typing import Any

from harness.dialects import Request
from harness.dialects.openadr301 import SIMPLE_DESCRIPTOR, OpenADR301

NAME = "openadr-3.1.0"


class OpenADR310(OpenADR301):
    name = NAME
    string_targets = True  # targets are strings matched against the VEN records' own targets (business logic sets them)

    def list_vens(self, skip: int = 0, limit: int = 50) -> Request:
        return Request("GET", f"/vens?skip={skip}&limit={limit}")

    def grant_target(self, ven: dict[str, Any], target: str) -> Request:
        """Business logic adds a target to a VEN record (PUT, BL_VEN_REQUEST, its other fields kept)."""
        old = [t for t in ven.get("targets") or [] if isinstance(t, str)]
        body: dict[str, Any] = {"objectType": "BL_VEN_REQUEST", "clientID": ven["clientID"], "venName": ven["venName"],
                                "targets": [*old, target] if target not in old else old}
        if ven.get("attributes"):
            body["attributes"] = ven["attributes"]
        return Request("PUT", f"/vens/{ven['id']}", json=body)

    def auth_server(self) -> Request | None:
        return Request("GET", "/auth/server")

    def create_ven(self, ven_name: str) -> Request:
        return Request("POST", "/vens", json={"objectType": "VEN_VEN_REQUEST", "venName": ven_name})

    def create_resource(self, ven_id: str, resource_name: str) -> Request:
        body = {"objectType": "VEN_RESOURCE_REQUEST", "resourceName": resource_name, "venID": ven_id}
        return Request("POST", "/resources", json=body)

    def create_program(self, program_name: str) -> Request:
        return Request("POST", "/programs", json={"programName": program_name, "payloadDescriptors": [SIMPLE_DESCRIPTOR]})

    def _object_type(self, name: str) -> dict[str, str]:
        return {}

    def _subscription_head(self) -> dict[str, Any]:
        return {}

    def _report_head(self, program_id: str, event_id: str, client_name: str) -> dict[str, Any]:
        return {"eventID": event_id, "clientName": client_name}  # 3.1.0 dropped report.programID (issue 253)
