"""The RunSink seam: what a run tells every sink (live view, results writer, junit, watches, later dashboards and
exporters), and the plain facts it tells them. Edge seam: data and Protocols; sinks render, write or judge.

A sink is told, in this order, always from the run's main thread (so it must return quickly):

    preparing(step)                before started, per set-up step ("starting the embedded VTN", "starting 2 workers"),
                                   so a slow set-up is never a blank screen (told to the views: the other sinks come after)
    started(info)                  once, when the workers are started on t0 (or stopped before it: `info.is_started`)
    window_closed(second, window)  once per one-second window, in order, when every worker still running has sent
                                   its delta of it (a worker that ended no longer holds windows back); `window` is
                                   the merged window: operation -> counts and histograms
    snapshot(snap)                 about once a second: the run as it stands
    finished(outcome)              once, with the verdict and the summary, before teardown (never for a run that
                                   failed in set-up)

A sink may steer the run through `info.control` (stop it, add a note). To add one, implement the five methods (or
subclass `BaseSink`) and append it in `harness.run.session.RunSession.sinks` — one line. Exporters (Prometheus,
OTLP: `harness.sinks.prometheus`, `harness.sinks.otlp`) are told last, after the results are written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from harness.core.profile import Profile
from harness.core.results import RunResults, WindowOp
from harness.core.thresholds import ThresholdResult


class RunControl(Protocol):
    """What a sink may do to the run it watches (the supervisor implements it)."""

    def request_stop(self, reason: str, drain_s: float | None = None) -> None:
        """Stop every worker: drain in-flight requests for drain_s (None: the profile's drain), then end."""

    def note(self, text: str) -> None:
        """A line for the live view and summary.json's run.notes."""

    def is_signalled(self) -> bool:
        """True once SIGINT or SIGTERM came (a sink then waits for nothing more)."""


@dataclass(frozen=True)
class RunInfo:
    profile: Profile
    run_dir: Path
    target: str
    t0_epoch_s: float
    workers: int
    control: RunControl
    results: RunResults  # merged so far, growing as deltas arrive: read it, never change it
    is_started: bool = True  # False: stopped before start (a signal, or workers not ready)


@dataclass
class Snapshot:
    profile: Profile
    results: RunResults
    elapsed_s: float
    phase: str  # running | draining
    target: str
    notes: list[str] = field(default_factory=list)


@dataclass
class Outcome:
    """How a run ended: its verdict, exit code, summary.json document and the checks behind them."""

    exit_code: int
    verdict: str
    run_dir: Path
    summary: dict[str, Any]
    results: RunResults = field(default_factory=RunResults)
    checks: list[ThresholdResult] = field(default_factory=list)  # every threshold, judged at the end
    invalid_reasons: list[str] = field(default_factory=list)  # why the run is invalid (empty unless it is)
    report_path: Path | None = None  # report.html, when the run wrote one (harness run does)
    report_error: str | None = None  # why report.html could not be written (the verdict stands)


class RunSink(Protocol):
    def preparing(self, step: str) -> None: ...
    def started(self, info: RunInfo) -> None: ...
    def window_closed(self, second: int, window: Mapping[str, WindowOp]) -> None: ...
    def snapshot(self, snap: Snapshot) -> None: ...
    def finished(self, outcome: Outcome) -> None: ...


class BaseSink:
    """A sink that ignores every fact: subclass it and override the facts you need."""

    def preparing(self, step: str) -> None:
        pass

    def started(self, info: RunInfo) -> None:
        pass

    def window_closed(self, second: int, window: Mapping[str, WindowOp]) -> None:
        pass

    def snapshot(self, snap: Snapshot) -> None:
        pass

    def finished(self, outcome: Outcome) -> None:
        pass


class Fanout:
    """Tells each fact to every sink, in the order given (a RunSink itself)."""

    def __init__(self, sinks: Sequence[RunSink]) -> None:
        self.sinks = list(sinks)

    def preparing(self, step: str) -> None:
        for s in self.sinks:
            s.preparing(step)

    def started(self, info: RunInfo) -> None:
        for s in self.sinks:
            s.started(info)

    def window_closed(self, second: int, window: Mapping[str, WindowOp]) -> None:
        for s in self.sinks:
            s.window_closed(second, window)

    def snapshot(self, snap: Snapshot) -> None:
        for s in self.sinks:
            s.snapshot(snap)

    def finished(self, outcome: Outcome) -> None:
        for s in self.sinks:
            s.finished(outcome)
