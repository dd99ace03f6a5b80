"""junit.xml for CI systems: one test case per threshold (or default gate), one for the generator's health, and
for a run the target refused at first contact one saying so.

Edge: `junit_xml` renders (pure); `JunitWriter`, a sink, writes RUN_DIR/junit.xml atomically when the run ends.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from harness.core.thresholds import ThresholdResult, format_value
from harness.sinks.base import BaseSink, Outcome
from harness.sinks.resultsdir import write_bytes_atomic

GENERATOR_CASE = "generator health"
FIRST_CONTACT_CASE = "first contact"


def junit_xml(run_name: str, threshold_results: Sequence[ThresholdResult], invalid_reasons: Sequence[str],
              aborted: dict[str, Any] | None = None) -> bytes:
    """A `<testsuites>` document; a failed threshold carries its value and limit, an invalid run its reasons, a
    refused run (summary.json's `aborted`) the VTN's status and detail."""
    cases: list[ET.Element] = []
    if aborted:
        case = ET.Element("testcase", classname=f"harness.{run_name}.run", name=FIRST_CONTACT_CASE, time="0")
        failure = ET.SubElement(case, "failure", type="aborted", message=str(aborted.get("reason", "run aborted")))
        failure.text = "".join(f"{k}: {aborted[k]}\n" for k in ("operation", "status", "failures", "example") if k in aborted)
        cases.append(case)
    for r in threshold_results:
        # Default gates (the profile named no thresholds) are their own class, so CI shows why a run failed.
        group = "default_gates" if r.is_default else "thresholds"
        case = ET.Element("testcase", classname=f"harness.{run_name}.{group}", name=r.expr, time="0")
        if not r.passed:
            value = "no data" if r.value is None else format_value(r.value, r.unit)
            failure = ET.SubElement(case, "failure", type="threshold", message=r.detail)
            failure.text = f"metric: {r.metric}\nvalue: {value}\nlimit: {r.comparator} {format_value(r.limit, r.unit)}\n"
        cases.append(case)
    health = ET.Element("testcase", classname=f"harness.{run_name}.generator", name=GENERATOR_CASE, time="0")
    if invalid_reasons:
        failure = ET.SubElement(health, "failure", type="invalid", message="the run is invalid: " + "; ".join(invalid_reasons))
        failure.text = "".join(f"{reason}\n" for reason in invalid_reasons)
    cases.append(health)
    failures = sum(1 for c in cases if c.find("failure") is not None)
    counts = {"tests": str(len(cases)), "failures": str(failures), "errors": "0", "skipped": "0"}
    root = ET.Element("testsuites", {"name": "harness", **counts})
    suite = ET.SubElement(root, "testsuite", {"name": f"harness.{run_name}", **counts})
    suite.extend(cases)
    ET.indent(root)
    data: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return data + b"\n"


class JunitWriter(BaseSink):
    """junit.xml of a run's thresholds and generator health, written when the run ends."""

    def __init__(self, run_dir: Path) -> None:
        self.run_dir = run_dir

    def finished(self, outcome: Outcome) -> None:
        xml = junit_xml(outcome.summary["run"]["name"], outcome.checks, outcome.invalid_reasons,
                        outcome.summary.get("aborted"))
        write_bytes_atomic(self.run_dir / "junit.xml", xml)
