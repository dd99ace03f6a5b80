"""Metrics export, end to end: `harness run --prometheus 0 --otlp URL` (the CLI in a subprocess, the embedded VTN,
50 VENs x 3 reports) scraped while it runs and at its end as a scraper would parse it, and its OTLP pushes
received by a test collector decoding the protobuf; both carry summary.json's totals. Bad addresses: exit 2."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from prometheus_client.parser import text_string_to_metric_families

from harness.core.histogram import LOWER_NS, Histogram
from harness.core.profile import Profile
from harness.core.results import RunResults
from harness.sinks.base import Outcome, RunInfo, Snapshot
from harness.sinks.otlp import OtlpSink
from harness.sinks.prometheus import BOUNDS_NS, histogram_buckets

RUN = ["--vens", "50", "--reports-per-ven", "3", "--interval", "1s", "--workers", "2", "--seed", "7", "--quiet"]
DEADLINE_S = 90.0
POLL_S = 0.2  # between scrapes: a scraper's interval, not a synchronisation


@dataclass
class Collector:
    """An OTLP/HTTP metrics receiver on 127.0.0.1: every export request it was sent, decoded."""

    requests: list[ExportMetricsServiceRequest] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    status: int = 200  # what it answers: 400 refuses every export (not retried by the exporter)


@pytest.fixture()
def collector() -> Iterator[tuple[Collector, str]]:
    got = Collector()

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            req = ExportMetricsServiceRequest()
            req.ParseFromString(body)
            got.requests.append(req)
            got.paths.append(self.path)
            self.send_response(got.status)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: Any) -> None:  # noqa: A002
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield got, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


def _scrape(url: str) -> dict[str, dict[tuple[tuple[str, str], ...], float]]:
    """What a scraper gets: sample name -> labels -> value, parsed by prometheus-client's own parser."""
    with urllib.request.urlopen(url, timeout=10) as r:
        text = r.read().decode()
    out: dict[str, dict[tuple[tuple[str, str], ...], float]] = {}
    for fam in text_string_to_metric_families(text):
        for s in fam.samples:
            out.setdefault(s.name, {})[tuple(sorted(s.labels.items()))] = s.value
    return out


def _report_ok(m: dict[str, dict[tuple[tuple[str, str], ...], float]]) -> float:
    return m.get("harness_operations_total", {}).get((("operation", "report"), ("outcome", "ok"), ("phase", "measured")), 0.0)


def test_prometheus_and_otlp_carry_the_runs_totals(tmp_path: Path, collector: tuple[Collector, str]) -> None:
    """Scraped during the run (not finished, reports <= 150) and at its end (finished, 150 reports ok); the report
    histogram's count equals summary.json's ok and histograms.npz's total; the OTLP pushes, the last one after
    the final counts, carry 150 and the same histogram count, with scale-6 exponential buckets that add up."""
    got, otlp_url = collector
    cmd = [sys.executable, "-m", "harness", "run", *RUN, "--prometheus", "0", "--otlp", otlp_url, "--otlp-interval", "1s"]
    with open(tmp_path / "stdout.txt", "w") as out, \
            subprocess.Popen(cmd, cwd=tmp_path, stdout=out, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        line = proc.stderr.readline()
        assert line.startswith("harness: prometheus: serving http://127.0.0.1:"), line
        url = line.split()[-1]
        scrapes = [_scrape(url)]
        deadline = time.monotonic() + DEADLINE_S
        while scrapes[-1]["harness_run_finished"][()] == 0.0:
            assert time.monotonic() < deadline, "no final scrape"
            threading.Event().wait(POLL_S)
            scrapes.append(_scrape(url))
        stderr = proc.stderr.read()
        assert proc.wait(timeout=DEADLINE_S) == 0, ((tmp_path / "stdout.txt").read_text()[-2000:], stderr)
    during, final = scrapes[0], scrapes[-1]
    assert during["harness_run_finished"][()] == 0.0 and _report_ok(during) <= 150
    counts = [_report_ok(s) for s in scrapes]
    assert counts == sorted(counts)  # a counter never goes back
    assert _report_ok(final) == 150.0
    [run_dir] = (tmp_path / "runs").iterdir()
    doc = json.loads((run_dir / "summary.json").read_text())
    report = doc["operations"]["report"]
    assert report["ok"] == 150
    assert any(n.startswith(f"prometheus: {url}") for n in doc["run"]["notes"]), doc["run"]["notes"]
    labels = (("operation", "report"), ("phase", "measured"))
    hist_count = final["harness_response_time_seconds_count"][labels]
    with np.load(run_dir / "histograms.npz") as npz:
        npz_count = int(npz["total/report/response/count"].sum())
    assert hist_count == report["ok"] == npz_count == final["harness_response_time_seconds_bucket"][(("le", "+Inf"), *labels)]
    assert final["harness_service_time_seconds_count"][labels] == 150
    p99 = final["harness_percentile_seconds"][(("metric", "response_time"), ("operation", "report"), ("percentile", "p99"))]
    assert round(p99 * 1e3, 4) == report["response_time"]["p99_ms"]

    assert got.requests and set(got.paths) == {"/v1/metrics"}
    last = {m.name: m for rm in got.requests[-1].resource_metrics for sm in rm.scope_metrics for m in sm.metrics}
    finished = [p.as_double for p in last["harness.run_finished"].gauge.data_points]
    assert finished == [1.0]
    ops = {(a["operation"], a["outcome"], a["phase"]): p.as_int for p in last["harness.operations"].sum.data_points
           for a in [{kv.key: kv.value.string_value for kv in p.attributes}]}
    assert ops[("report", "ok", "measured")] == 150 and last["harness.operations"].sum.is_monotonic
    [point] = [p for p in last["harness.response_time"].exponential_histogram.data_points
               if {kv.key: kv.value.string_value for kv in p.attributes} == {"operation": "report", "phase": "measured"}]
    assert point.count == report["ok"] == sum(point.positive.bucket_counts) + point.zero_count
    assert point.scale == 6 and round(point.max * 1e3, 4) == report["response_time"]["max_ms"]


def test_sigint_ends_the_wait_for_a_last_scrape(tmp_path: Path) -> None:
    """The end of a run waits for a scraper (--prometheus-linger 10m): SIGINT ends the wait at once, with the run's
    own exit code and its results written; the endpoint is closed."""
    cmd = [sys.executable, "-m", "harness", "run", "--vens", "5", "--reports-per-ven", "1", "--interval", "1s",
           "--quiet", "--prometheus", "0", "--prometheus-linger", "10m"]
    with subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
        assert proc.stderr is not None
        url = proc.stderr.readline().split()[-1]
        waiting = f"harness: prometheus: final counts at {url}, up until a scrape reads them"
        lines = iter(proc.stderr.readline, "")  # to EOF: a run that ended without waiting fails below
        assert any(line.startswith(waiting) for line in lines), "no wait for a last scrape"
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, proc.stderr.read()
    [run_dir] = (tmp_path / "runs").iterdir()
    assert json.loads((run_dir / "summary.json").read_text())["operations"]["report"]["ok"] == 5
    with pytest.raises(OSError):
        urllib.request.urlopen(url, timeout=10)


class Notes:
    """The RunControl an OTLP sink is given: the notes it adds."""

    def __init__(self) -> None:
        self.notes: list[str] = []

    def request_stop(self, reason: str, drain_s: float | None = None) -> None:
        raise AssertionError("an exporter never stops the run")

    def note(self, text: str) -> None:
        self.notes.append(text)

    def is_signalled(self) -> bool:
        return False


def test_refused_otlp_pushes_are_said_once_and_spaced_out(tmp_path: Path, collector: tuple[Collector, str]) -> None:
    """A collector that refuses every push: one note naming the endpoint, the run goes on, and each failure doubles
    the wait before the next periodic push; the final flush is still tried."""
    got, url = collector
    got.status = 400
    sink, control = OtlpSink(url, interval_s=1.0), Notes()
    results = RunResults()
    sink.started(RunInfo(Profile(vens=5), tmp_path, "http://127.0.0.1:1", 1.7e9, 1, control, results))
    for elapsed_s in (0.5, 1.0, 2.0, 2.9, 3.0, 6.9, 7.0):
        sink.snapshot(Snapshot(Profile(vens=5), results, elapsed_s, "running", "x"))
    assert len(got.requests) == 3  # at 1 s, then 2 s later, then 4 s later
    sink.finished(Outcome(0, "pass", tmp_path, {}, results))
    assert len(got.requests) == 4 and sink.exports == 0
    assert control.notes == [f"otlp: export to {url}/v1/metrics failed (is a collector listening there?)"]
    assert sink.problem == control.notes[0]


def _fails(args: list[str], tmp_path: Path) -> str:
    r = subprocess.run([sys.executable, "-m", "harness", "run", *RUN, *args], cwd=tmp_path, capture_output=True,
                       text=True, timeout=60, check=False)
    assert r.returncode == 2, (r.stdout, r.stderr)
    assert not (tmp_path / "runs").exists()  # refused before anything ran
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    return lines[0]


def test_bad_prometheus_address_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """--prometheus nonsense: one line naming the flag, the value and what to give instead; exit 2."""
    line = _fails(["--prometheus", "nonsense"], tmp_path)
    assert line == ("harness: error: --prometheus: 'nonsense' is not [HOST:]PORT; give a port (e.g. 9464, or 0 for "
                    "any free one) or HOST:PORT (e.g. 127.0.0.1:9464)")


def test_busy_prometheus_port_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """A port another socket listens on: one line naming the address and the cause; exit 2, nothing run."""
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        line = _fails(["--prometheus", str(port)], tmp_path)
    assert line.startswith(f"harness: error: --prometheus {port}: cannot listen on 127.0.0.1:{port} (")
    assert line.endswith("); choose another address or port (0: any free one)"), line


def test_bad_otlp_url_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """--otlp with no http(s) URL: one line with an example; exit 2."""
    line = _fails(["--otlp", "localhost:4318"], tmp_path)
    assert line == ("harness: error: --otlp: 'localhost:4318' is not an OTLP/HTTP URL; give http(s)://HOST:PORT, "
                    "e.g. http://127.0.0.1:4318")


def test_prometheus_buckets_are_harness_bucket_bounds() -> None:
    """Every Prometheus bound is a harness bucket's lower bound, so the count below it is exact."""
    assert set(BOUNDS_NS.tolist()) <= set(LOWER_NS.astype(np.int64).tolist())
    values_ns = np.array([20_000, 1_000_000, 1_048_575, 1_048_576, 3_000_000_000])
    buckets = dict(histogram_buckets(Histogram.of_ns(values_ns)))
    assert buckets["0.001048576"] == 3.0 and buckets["+Inf"] == 5.0
