"""Live view and summary tables render from a snapshot, on a TTY and as plain lines."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from harness.core.messages import Health, WorkerDelta
from harness.core.profile import Profile
from harness.core.recorder import Recorder
from harness.core.results import RunResults
from harness.sinks.base import Snapshot
from harness.sinks.terminal import LiveView, live_renderable, plain_line


def snapshot() -> Snapshot:
    res = RunResults()
    rec = Recorder()
    for i in range(100):
        rec.ok("report", 0.0, 0.001, 0.001 + i / 1000)
    rec.fail("report", "http_503", "harness-ven-0000007: POST /reports -> 503")
    ops, errs = rec.flush()
    res.add(WorkerDelta(0, 0, ops, errs, Health(2.5, 1.0, 40.0, 80 << 20, 30, 3, 1), 50, 0))
    res.worker(0).pid = 4242
    res.worker(0).vens = 50
    return Snapshot(Profile(vens=50, interval_s=1.0), res, 1.0, "running", "http://127.0.0.1:1/openadr3/3.0.1", ["note one"])


def test_live_renderable_shows_operations_errors_workers() -> None:
    """The TTY view has the rate header, per-operation percentiles, error classes and a worker row."""
    console = Console(file=StringIO(), width=160, color_system=None)
    console.print(live_renderable(snapshot()))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "VENs active 50/50" in text and "reports/s target 50.0" in text
    assert "report" in text and "http_503" in text and "4242" in text and "note one" in text


def test_plain_line_for_ci_logs() -> None:
    """Without a TTY, one line per interval with counts, rate, p99 and errors."""
    line = plain_line(snapshot())
    assert "\n" not in line and "reports=100" in line and "errors=1" in line and "vens=50/50" in line


def test_live_view_without_tty_prints_lines() -> None:
    """LiveView on a non-terminal console prints plain lines, not a live region."""
    console = Console(file=StringIO(), width=120, color_system=None)
    view = LiveView(console)
    view.snapshot(snapshot())
    view.close()
    assert console.file.getvalue().count("\n") == 1  # type: ignore[attr-defined]
