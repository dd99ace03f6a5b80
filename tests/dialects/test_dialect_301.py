"""OpenADR 3.0.1 dialect: every request body validates against the spec; replies are parsed leniently."""

from __future__ import annotations

import pytest

from harness.core.errors import PROTOCOL, Failure
from harness.core.simclock import iso_duration, rfc3339
from harness.dialects import Site, get
from harness.net.wire import decode, encode
from tests.conftest import schema_errors

D = get("openadr-3.0.1")


def test_report_body_validates() -> None:
    """A multi-resource report (USAGE kWh + DEMAND kW per resource) is a valid 3.0.1 report."""
    sites = [Site("harness-ven-0000001-site-000", 0.0123, 2.5), Site("harness-ven-0000001-site-001", 0.2, 14.0)]
    req = D.report("12", "34", "harness-ven-0000001", sites, rfc3339(1_790_000_000.5), iso_duration(15))
    assert req.method == "POST" and req.path == "/reports"
    assert schema_errors("3.0.1", "report", req.json) == []
    assert [r["resourceName"] for r in req.json["resources"]] == [s.name for s in sites]
    assert req.json["resources"][1]["intervals"][0]["payloads"][0] == {"type": "USAGE", "values": [0.2]}


@pytest.mark.parametrize(
    ("component", "request_"),
    [
        ("ven", D.create_ven("harness-ven-0000001")),
        ("resource", D.create_resource("7", "harness-ven-0000001-site-000")),
        ("program", D.create_program("harness-program")),
        ("event", D.create_event("1", "harness-program-telemetry", rfc3339(0), iso_duration(3600), 2)),
    ],
)
def test_create_bodies_validate(component: str, request_: object) -> None:
    """VEN, resource, program and event bodies are valid 3.0.1 objects."""
    assert schema_errors("3.0.1", component, request_.json) == []  # type: ignore[attr-defined]


def test_token_request_is_form_encoded_client_credentials() -> None:
    """The token request is form-encoded and valid against clientCredentialRequest."""
    req = D.token("ven-a", "s3cret")
    body, ctype = encode(req)
    assert ctype == "application/x-www-form-urlencoded"
    assert body == b"grant_type=client_credentials&client_id=ven-a&client_secret=s3cret"
    assert schema_errors("3.0.1", "clientCredentialRequest", req.form) == []


def test_lenient_parsing() -> None:
    """Double-encoded JSON, string expires_in, integer ids and `[]` are understood; junk is a protocol failure."""
    assert D.parse_token(decode(b'"{\\"access_token\\": \\"t\\", \\"expires_in\\": \\"60\\"}"')).expires_in_s == 60.0
    assert D.parse_id(decode(b'{"id": 17}')) == "17"
    assert D.parse_first_id(decode(b"[]")) is None
    assert D.parse_list(decode(b"null")) == []
    with pytest.raises(Failure) as e:
        decode(b"<html>oops</html>")
    assert e.value.error_class == PROTOCOL
    with pytest.raises(Failure):
        D.parse_id(decode(b'{"venName": "x"}'))


def test_rfc3339_and_durations() -> None:
    """Timestamps carry an explicit zone; durations are ISO 8601."""
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert [iso_duration(s) for s in (15, 900, 5400, 0.5, 0)] == ["PT15S", "PT15M", "PT1H30M", "PT0.5S", "PT0S"]


def test_unknown_dialect_is_a_named_error() -> None:
    """An unknown dialect name lists the known ones."""
    with pytest.raises(ValueError, match="dialect must be one of openadr-3.0.1"):
        get("openadr-9")
