"""The delivery audit: read back, as the operator, every report a run sent and judge it against the run's ledger.

Edge (blocking HTTP through the operator, files in the run folder). Pages hold at most 50 reports, requests are
spaced to stay under a rate, and progress is saved in `RUN_DIR/audit/` so an interrupted audit resumes where it
stopped. The classification itself is pure (harness.core.delivery); any acknowledged report the VTN does not hold
fails the run: summary.json (`audit`, verdict, reasons) and junit.xml are rewritten to say so.
"""

from __future__ import annotations

import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import urlencode

import numpy as np
import numpy.typing as npt
import orjson

from harness import dialects
from harness.core.delivery import NAME_FIELDS, AuditResult, ReportLedger, RunLedger, classify, pack, parse_key
from harness.core.errors import Failure
from harness.core.exits import EXIT_ABORTED, EXIT_FAIL, EXIT_USAGE, HarnessError
from harness.core.target import TargetSettings
from harness.dialects import Request
from harness.net.wire import decode
from harness.sinks.resultsdir import write_bytes_atomic, write_json

LEDGER_FILE = "reports_sent.npz"
AUDIT_DIR = "audit"
PROGRESS_FILE = "progress.json"
PAGE_LIMIT = 50  # OpenADR servers cap a page at 50
AUDIT_CASE = "delivery audit"


class AuditError(HarnessError):
    """The audit could not be made (no ledger, no VTN, a refused read): one line, with its exit code."""

    def __init__(self, message: str, exit_code: int = EXIT_ABORTED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class PageReader(Protocol):
    """One page of the run's reports as the VTN lists them (skip, limit), as decoded JSON objects."""

    def page(self, skip: int, limit: int) -> list[dict[str, Any]]: ...


@dataclass(frozen=True)
class AuditSettings:
    rate_per_s: float = 20.0  # page requests per second at most
    page_limit: int = PAGE_LIMIT
    checkpoint_pages: int = 20  # progress is saved every this many pages (and at the end)

    def __post_init__(self) -> None:
        if not self.rate_per_s > 0:
            raise AuditError(f"audit rate must be > 0 pages/s, got {self.rate_per_s:g}", EXIT_USAGE)
        if not 1 <= self.page_limit <= PAGE_LIMIT:
            raise AuditError(f"audit page limit must be 1..{PAGE_LIMIT}, got {self.page_limit}", EXIT_USAGE)


# ---- the ledger file ------------------------------------------------------------------------------


def write_ledger(run_dir: Path, ledgers: Iterable[ReportLedger], n_vens: int) -> RunLedger:
    """RUN_DIR/reports_sent.npz: what every worker sent and which were not acknowledged."""
    run = RunLedger.merge(ledgers, n_vens)
    path = run_dir / LEDGER_FILE
    tmp = path.with_name(f".{path.name}.tmp.npz")
    arrays: dict[str, Any] = dict(run.to_arrays())
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    return run


def read_ledger(run_dir: Path) -> RunLedger:
    path = run_dir / LEDGER_FILE
    if not path.exists():
        raise AuditError(f"{path}: no ledger of sent reports (a run before audits existed, or one that never started); "
                         f"run it again to audit it", EXIT_USAGE)
    with np.load(path) as arrays:
        return RunLedger.from_arrays({k: arrays[k] for k in arrays.files})


# ---- reading back ---------------------------------------------------------------------------------


class OperatorPages:
    """Pages of `GET /reports?eventID=..` (the run's telemetry event) with the business-logic credential."""

    def __init__(self, operator: Any, event_id: str) -> None:
        self.operator = operator  # harness.run.operator.Operator
        self.event_id = event_id

    def page(self, skip: int, limit: int) -> list[dict[str, Any]]:
        req = Request("GET", f"/reports?{urlencode({'eventID': self.event_id, 'skip': skip, 'limit': limit})}")
        reply = self.operator.read(req, f"list reports (skip {skip})")
        try:
            doc = decode(reply.body)
            return self.operator.dialect.parse_list(doc)  # type: ignore[no-any-return]
        except Failure as f:
            raise AuditError(f"list reports (skip {skip}): {f}") from None


def _keys_of(items: list[dict[str, Any]], tag: str) -> list[int]:
    """Packed ids of this run's reports on a page (other runs' reports and untagged ones are skipped)."""
    out = []
    for item in items:
        name = next((item[f] for f in NAME_FIELDS if f in item), None)
        key = parse_key(name)
        if key is not None and key[0] == tag:
            out.append(int(pack(np.asarray([key[1]]), np.asarray([key[2]]))[0]))
    return out


def read_back(run_dir: Path, reader: PageReader, tag: str, settings: AuditSettings = AuditSettings(),
              clock: Callable[[], float] = time.monotonic, sleep: Callable[[float], None] = time.sleep,
              restart: bool = False) -> tuple[npt.NDArray[np.int64], dict[str, Any]]:
    """Every id of this run the VTN holds (one entry per stored copy), paging from where a previous audit of this
    folder stopped; returns the ids and the progress record."""
    folder = run_dir / AUDIT_DIR
    folder.mkdir(exist_ok=True)
    progress_path = folder / PROGRESS_FILE
    progress: dict[str, Any] = {"tag": tag, "skip": 0, "pages": 0, "reports_read": 0, "chunks": [], "done": False,
                                "resumed": 0}
    if progress_path.exists() and not restart:
        saved = orjson.loads(progress_path.read_bytes())
        if saved.get("tag") == tag:
            progress = saved
            progress["resumed"] = int(progress.get("resumed", 0)) + (0 if saved.get("done") else 1)
    chunks = [np.load(folder / name) for name in progress["chunks"]]
    pending: list[int] = []
    interval_s = 1.0 / settings.rate_per_s
    next_at = clock()
    pages_since = 0

    def checkpoint() -> None:
        nonlocal pending, pages_since
        if pending:
            name = f"found-{len(progress['chunks']):05d}.npy"
            arr = np.asarray(pending, dtype=np.int64)
            tmp = folder / f".{name}.tmp.npy"
            np.save(tmp, arr)
            tmp.replace(folder / name)
            progress["chunks"].append(name)
            chunks.append(arr)
            pending = []
        pages_since = 0
        write_json(progress_path, progress)

    while not progress["done"]:
        wait = next_at - clock()
        if wait > 0:
            sleep(wait)  # the rate bound: the VTN under audit is someone's production server
        next_at = max(next_at, clock()) + interval_s
        items = reader.page(int(progress["skip"]), settings.page_limit)
        pending += _keys_of(items, tag)
        progress["skip"] = int(progress["skip"]) + len(items)
        progress["pages"] = int(progress["pages"]) + 1
        progress["reports_read"] = int(progress["reports_read"]) + len(items)
        progress["done"] = len(items) < settings.page_limit
        pages_since += 1
        if progress["done"] or pages_since >= settings.checkpoint_pages:
            checkpoint()
    found = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int64)
    return found.astype(np.int64), progress


# ---- the verdict ----------------------------------------------------------------------------------


def apply(run_dir: Path, result: AuditResult, progress: dict[str, Any]) -> dict[str, Any]:
    """summary.json gets `audit` (and fails on a lost report), junit.xml a `delivery audit` case; returns the doc."""
    path = run_dir / "summary.json"
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    audit = result.to_json() | {"pages": progress["pages"], "reports_read": progress["reports_read"],
                                "resumed": progress.get("resumed", 0)}
    doc["audit"] = audit
    reasons = [r for r in doc.get("reasons") or [] if not r.startswith("delivery audit:")]
    if result.lost:
        examples = ", ".join(result.examples.get("acknowledged_missing", []))
        reasons.append(f"delivery audit: {result.lost:,} of {result.sent:,} reports acknowledged by the VTN are not "
                       f"stored (e.g. {examples})")
        if doc.get("verdict") == "pass":
            doc["verdict"] = "fail"
    doc["reasons"] = reasons
    write_json(path, doc)
    junit = run_dir / "junit.xml"
    if junit.exists():
        write_bytes_atomic(junit, with_audit_case(junit.read_bytes(), str(doc.get("run", {}).get("name", "run")), audit))
    return doc


def with_audit_case(xml: bytes, run_name: str, audit: dict[str, Any]) -> bytes:
    """junit.xml with its `delivery audit` test case replaced by this audit's, counts recomputed."""
    root = ET.fromstring(xml)
    suite = root.find("testsuite")
    if suite is None:
        suite = ET.SubElement(root, "testsuite", name=f"harness.{run_name}")
    for case in suite.findall("testcase"):
        if case.get("name") == AUDIT_CASE:
            suite.remove(case)
    case = ET.SubElement(suite, "testcase", classname=f"harness.{run_name}.audit", name=AUDIT_CASE, time="0")
    if not audit["passed"]:
        failure = ET.SubElement(case, "failure", type="audit",
                                message=f"{audit['acknowledged_missing']:,} acknowledged reports are not stored")
        failure.text = "".join(f"{k}: {audit[k]}\n" for k in ("sent", "acknowledged_stored", "unacknowledged_stored",
                                                               "acknowledged_missing", "unacknowledged_missing",
                                                               "stored_twice"))
    cases = suite.findall("testcase")
    failures = sum(1 for c in cases if c.find("failure") is not None)
    for el in (root, suite):
        el.set("tests", str(len(cases)))
        el.set("failures", str(failures))
    ET.indent(root)
    out: bytes = ET.tostring(root, encoding="utf-8", xml_declaration=True)
    return out + b"\n"


def exit_code_for(doc: dict[str, Any], previous: int) -> int:
    """A run that passed and then lost a report fails (1); any other outcome keeps its code."""
    audit = doc.get("audit") or {}
    return EXIT_FAIL if previous == 0 and not audit.get("passed", True) else previous


# ---- one call: audit a run folder -----------------------------------------------------------------


def audit_run(run_dir: Path, operator: Any, settings: AuditSettings = AuditSettings(), *, restart: bool = False,
              ledger: RunLedger | None = None) -> tuple[AuditResult, dict[str, Any]]:
    """Read back and classify the run's reports with this operator; summary.json and junit.xml are updated."""
    doc = _summary(run_dir)
    run = doc.get("run") or {}
    tag, event_id = run.get("report_tag"), run.get("event_id")
    if not tag or not event_id:
        raise AuditError(f"{run_dir}: summary.json names no report tag or event (a run before audits existed)", EXIT_USAGE)
    ledger = ledger if ledger is not None else read_ledger(run_dir)
    found, progress = read_back(run_dir, OperatorPages(operator, str(event_id)), str(tag), settings, restart=restart)
    result = classify(ledger, found, str(tag))
    return result, apply(run_dir, result, progress)


def _summary(run_dir: Path) -> dict[str, Any]:
    path = run_dir / "summary.json"
    if not path.exists():
        raise AuditError(f"{run_dir}: no summary.json (not a run folder?)", EXIT_USAGE)
    doc: dict[str, Any] = orjson.loads(path.read_bytes())
    return doc


@contextmanager
def operator_for(run_dir: Path) -> Iterator[Any]:
    """The operator of a finished run, from its manifest: its target (an embedded run's VTN restarted on the run's
    own vtn.sqlite, faults off) and its business-logic credential (the secret from the same variable)."""
    import os

    from harness.core import embedded
    from harness.net import tls
    from harness.run.operator import Operator

    run = _summary(run_dir).get("run") or {}
    prof = run.get("profile") or {}
    fields: dict[str, Any] = {k: tuple(v) if isinstance(v, list) else v
                              for k, v in (prof.get("target_settings") or {}).items()}
    settings = TargetSettings(**fields)
    is_embedded = bool(run.get("embedded_vtn"))
    env = str(prof.get("bl_secret_env", "HARNESS_BL_SECRET"))
    secret = os.environ.get(env, embedded.BL_SECRET if is_embedded else "")
    if not secret:
        raise AuditError(f"environment variable {env} is not set: the audit reads reports with the business-logic "
                         f"credential of the run", EXIT_USAGE)
    vtn = None
    if is_embedded:
        from harness.vtn import EmbeddedVtn, VtnConfig

        db = run_dir / "vtn.sqlite"
        if not db.exists():
            raise AuditError(f"{run_dir}: the embedded VTN's vtn.sqlite is gone; nothing to read back", EXIT_USAGE)
        vtn = EmbeddedVtn(VtnConfig(db_path=str(db))).start()
        base_url = vtn.url
    else:
        base_url = settings.base_url(str(run.get("target")))
    try:
        op = Operator(base_url, dialects.get(str(prof.get("dialect", "openadr-3.0.1"))),
                      str(prof.get("bl_client_id", embedded.BL_CLIENT_ID)), secret, float(prof.get("timeout_s", 10.0)),
                      tls.context_for(base_url, settings))
        op.wait_reachable(10.0)
        op.discover_token_url()
        yield op
    finally:
        if vtn is not None:
            vtn.stop()


def faults_off(vtn_url: str) -> None:
    """The embedded VTN of this run stops injecting faults: the audit reads what it stored, undisturbed (its fault
    counters, drops included, are kept)."""
    import urllib.request
    from urllib.parse import urlsplit

    parts = urlsplit(vtn_url)
    req = urllib.request.Request(f"{parts.scheme}://{parts.netloc}/_harness/faults", data=b"{}", method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:  # noqa: S310 - the run's own loopback VTN
        resp.read()
