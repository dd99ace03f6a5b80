"""Live view and summary tables render from a snapshot, on a TTY and as plain lines."""

from __future__ import annotations

from io import StringIO

from rich.console import Console

from harness.core.messages import Health, WorkerDelta
from harness.core.profile import Profile
from harness.core.stages import Stage
from harness.core.recorder import Recorder
from harness.core.results import RunResults
from harness.sinks.base import Snapshot
from harness.sinks.terminal import LiveView, live_renderable, plain_line


def snapshot(profile: Profile | None = None, elapsed_s: float = 1.0, ready: int = 50) -> Snapshot:
    res = RunResults()
    rec = Recorder()
    for i in range(100):
        rec.ok("report", 0.0, 0.001, 0.001 + i / 1000)
    rec.fail("report", "http_503", "harness-ven-0000007: POST /reports -> 503")
    ops, errs = rec.flush()
    res.add(WorkerDelta(0, 0, ops, errs, Health(2.5, 1.0, 40.0, 80 << 20, 30, 3, 1), ready, 0))
    res.worker(0).pid = 4242
    res.worker(0).vens = 50
    return Snapshot(profile or Profile(vens=50, interval_s=1.0), res, elapsed_s, "running",
                    "http://127.0.0.1:1/openadr3/3.0.1", ["note one"])


def rendered(snap: Snapshot) -> str:
    console = Console(file=StringIO(), width=160, color_system=None)
    console.print(live_renderable(snap))
    return console.file.getvalue()  # type: ignore[attr-defined]


def test_live_renderable_shows_operations_errors_workers() -> None:
    """The TTY view has the rate header, per-operation percentiles, error classes and a worker row."""
    console = Console(file=StringIO(), width=160, color_system=None)
    console.print(live_renderable(snapshot()))
    text = console.file.getvalue()  # type: ignore[attr-defined]
    assert "VENs ready 50/50" in text and "VENs provisioning" not in text and "reports/s target 50.0" in text
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


def test_a_progress_bar_while_vens_provision_and_none_once_ready() -> None:
    """12 of 50 VENs ready: a provisioning bar reading 12/50; all ready: no bar."""
    text = rendered(snapshot(ready=12))
    assert "VENs provisioning" in text and "12/50" in text and "━" in text
    assert "VENs provisioning" not in rendered(snapshot(ready=50))


def test_stages_ramping_down_show_what_the_ramp_asks_for_now() -> None:
    """Stages 0 -> 200 VENs over 10 s, hold 10 s, down to 0 over 10 s: at 25 s the ramp asks for 100 VENs while 200
    are ready — both said, on the TTY and in plain lines, instead of 200/200."""
    p = Profile(vens=200, interval_s=1.0, stages=(Stage(10.0, 200), Stage(10.0, 200), Stage(10.0, 0)))
    snap = snapshot(p, elapsed_s=25.0, ready=200)
    assert "VENs ready 200/200 stage 100" in rendered(snap)
    assert "vens=200/200 stage=100 " in plain_line(snap)


def test_set_up_steps_are_lines_before_the_first_snapshot() -> None:
    """A slow set-up is never a blank screen: each step is a plain line off a TTY."""
    console = Console(file=StringIO(), width=120, color_system=None)
    view = LiveView(console)
    view.preparing("starting the embedded VTN")
    view.preparing("starting 2 workers for 50 VENs")
    view.close()
    assert console.file.getvalue().splitlines() == [  # type: ignore[attr-defined]
        "[setup] starting the embedded VTN", "[setup] starting 2 workers for 50 VENs"]
