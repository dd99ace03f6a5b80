"""Shared fixtures: the OpenADR spec documents in tests/spec (copied with their Apache-2.0 LICENSE and NOTICE), schema validation against them, and a self-signed certificate."""

from __future__ import annotations

import shutil
import subprocess
from functools import cache
from pathlib import Path
from typing import Any

import pytest

SPEC_DIR = Path(__file__).resolve().parent / "spec"


@pytest.fixture(scope="session")
def cert(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 and its key (openssl CLI)."""
    if shutil.which("openssl") is None:
        pytest.fail("openssl not found: the TLS tests need it (apt-get install openssl)")
    d = tmp_path_factory.mktemp("tls")
    crt, key = d / "cert.pem", d / "key.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes",
         "-keyout", str(key), "-out", str(crt), "-days", "2", "-subj", "/CN=127.0.0.1",
         "-addext", "subjectAltName=IP:127.0.0.1"],
        check=True, capture_output=True,
    )
    return crt, key


@pytest.fixture
def needs_mosquitto() -> str:
    """Mosquitto's path; without it the test fails saying what to install (a missing broker never skips a test)."""
    from harness.vtn.broker import find_mosquitto

    path = find_mosquitto()
    if path is None:
        pytest.fail("mosquitto is not installed: apt-get install mosquitto (.ci/run installs it)", pytrace=False)
    return path


@pytest.fixture(autouse=True)
def target_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A run against a --target needs its secrets in the environment: tests' remote targets (spawned embedded or
    test VTNs) take the embedded defaults. A test that checks the missing-secret error deletes them."""
    monkeypatch.setenv("HARNESS_BL_SECRET", "bl-secret")
    monkeypatch.setenv("HARNESS_VEN_SECRET", "ven-secret")


@cache
def openapi(version: str) -> dict[str, Any]:
    import yaml

    path = SPEC_DIR / f"openadr3-{version}.yaml"
    doc: dict[str, Any] = yaml.safe_load(path.read_text(encoding="utf-8"))
    _add_discriminator_mappings(doc)
    return doc


def _add_discriminator_mappings(node: Any) -> None:
    """The spec's payloadDescriptors discriminate on objectType without a mapping, so a validator looks for
    a schema named EVENT_PAYLOAD_DESCRIPTOR; map the values to the schemas the spec means."""
    mapping = {
        "EVENT_PAYLOAD_DESCRIPTOR": "#/components/schemas/eventPayloadDescriptor",
        "REPORT_PAYLOAD_DESCRIPTOR": "#/components/schemas/reportPayloadDescriptor",
    }
    if isinstance(node, dict):
        disc = node.get("discriminator")
        refs = [s.get("$ref", "") for s in node.get("anyOf", []) + node.get("oneOf", []) if isinstance(s, dict)]
        if isinstance(disc, dict) and any(r.endswith("PayloadDescriptor") for r in refs):
            disc.setdefault("mapping", mapping)
        for v in node.values():
            _add_discriminator_mappings(v)
    elif isinstance(node, list):
        for v in node:
            _add_discriminator_mappings(v)


def schema_errors(version: str, component: str, instance: Any) -> list[str]:
    """Messages of every violation of components/schemas/<component> in the given OpenADR version."""
    from jsonschema import FormatChecker
    from openapi_schema_validator import OAS30Validator

    spec = openapi(version)
    root = {"$ref": f"#/components/schemas/{component}", "components": spec["components"]}
    validator = OAS30Validator(root, format_checker=FormatChecker())
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(instance)]
