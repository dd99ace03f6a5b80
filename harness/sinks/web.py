"""`harness run --web [HOST:]PORT`: a live dashboard of the run in the browser, updated every second.

Edge sink. A stdlib ThreadingHTTPServer in a daemon thread serves the page, the vendored chart library (uPlot, MIT,
harness/sinks/static/) and /api/snapshot. The run's main thread builds the snapshot as JSON bytes at each window
and snapshot, and swaps the reference in whole; the server threads only hand out the last bytes, so only immutable
data crosses threads, nothing is locked, and nothing touches the supervisor's loop. The socket is bound when the
sink is made (a busy port or a bad address is a usage error before the run).
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Mapping
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from typing import Any

from harness.core.exits import UsageError
from harness.core.results import RunResults, WindowOp
from harness.sinks import webview
from harness.sinks.base import BaseSink, Outcome, RunInfo, Snapshot
from harness.sinks.prometheus import parse_listen

STATIC = {  # path -> (file in harness/sinks/static, content type)
    "/": ("dashboard.html", "text/html; charset=utf-8"),
    "/static/dashboard.js": ("dashboard.js", "text/javascript; charset=utf-8"),
    "/static/uPlot.iife.min.js": ("uPlot.iife.min.js", "text/javascript; charset=utf-8"),
    "/static/uPlot.min.css": ("uPlot.min.css", "text/css; charset=utf-8"),
    "/static/uPlot.LICENSE": ("uPlot.LICENSE", "text/plain; charset=utf-8"),
}


def _static_files() -> dict[str, tuple[bytes, str]]:
    folder = resources.files("harness.sinks") / "static"
    return {path: ((folder / name).read_bytes(), ctype) for path, (name, ctype) in STATIC.items()}


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    files: dict[str, tuple[bytes, str]]
    snapshot: bytes = b"{}"  # replaced whole by the sink; read once per request


class _Server6(_Server):
    address_family = socket.AF_INET6


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:  # noqa: N802 - the stdlib's name
        path = self.path.split("?", 1)[0]
        if path == "/api/snapshot":
            body, ctype = self.server.snapshot, "application/json"
        elif path in self.server.files:
            body, ctype = self.server.files[path]
        else:
            self.send_error(HTTPStatus.NOT_FOUND)
            return
        self.send_response(HTTPStatus.OK)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - the stdlib's name
        pass


class WebDashboard(BaseSink):
    """Serves the live dashboard at `url` from the run's start until it has finished (the last snapshot, with the
    verdict, stays up until the process ends: the server thread is a daemon)."""

    def __init__(self, listen: str, flag: str = "--web") -> None:
        host, port = parse_listen(flag, listen)
        try:
            self._server = (_Server6 if ":" in host else _Server)((host, port), _Handler)
        except (OSError, OverflowError) as exc:
            raise UsageError(f"{flag} {listen}: cannot listen on {host}:{port} "
                             f"({getattr(exc, 'strerror', None) or exc}); choose a free port, or 0 for any") from None
        self._server.files = _static_files()
        self.port: int = self._server.server_address[1]
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{self.port}/"
        self.fired: list[dict[str, Any]] = []  # the DR events created so far (the session hands its list over)
        self._timeline, self._health = webview.Timeline(), webview.Timeline()
        self._thread: threading.Thread | None = None
        self._head: dict[str, Any] = {"phase": "starting"}
        self._info: RunInfo | None = None

    def started(self, info: RunInfo) -> None:
        self._info = info
        p = info.profile
        self._head = {"name": p.name, "target": info.target, "phase": "running" if info.is_started else "stopped",
                      "vens": p.vens, "interval_s": p.interval_s, "target_rate_per_s": p.target_rate_per_s,
                      "worker_count": info.workers, "run_dir": str(info.run_dir), "elapsed_s": 0.0, "verdict": None}
        info.control.note(f"web dashboard: {self.url}")
        self._publish(info.results, 0.0)
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.2},
                                        name="harness-web", daemon=True)
        self._thread.start()

    def window_closed(self, second: int, window: Mapping[str, WindowOp]) -> None:
        if self._info is not None:
            self._timeline.add(float(second), webview.window_values(second, window, self._info.profile))

    def snapshot(self, snap: Snapshot) -> None:
        self._health.add(round(snap.elapsed_s), webview.health_values(snap.results))
        self._head.update(phase=snap.phase, elapsed_s=round(snap.elapsed_s, 1))
        self._publish(snap.results, snap.elapsed_s, notes=snap.notes[-8:])

    def finished(self, outcome: Outcome) -> None:
        t0 = self._info.t0_epoch_s if self._info else 0.0
        self._head.update(phase="finished", verdict=outcome.verdict, exit_code=outcome.exit_code,
                          reasons=outcome.summary.get("reasons") or [])
        self._publish(outcome.results, max(0.0, time.time() - t0) if t0 else 0.0, checks=outcome.summary.get("thresholds"))

    def _publish(self, results: RunResults, elapsed_s: float, notes: list[str] | None = None,
                 checks: list[dict[str, Any]] | None = None) -> None:
        if self._info is None:
            return
        p = self._info.profile
        report = results.totals.get("report")
        rest = {
            "reports_ok": report.ok if report else 0, "reports_failed": report.errors if report else 0,
            "vens_ready": sum(w.vens_ready for w in results.workers.values()),
            "rate_3s": results.rate("report", 3),
            "errors": {cls: {"count": e.get("count", 0), "example": str(e.get("example", ""))[:300]}
                       for cls, e in results.errors.items()},
            "workers": webview.workers(results), "stages": webview.stages(p, elapsed_s),
            "thresholds": checks if checks is not None else webview.thresholds(p, results, elapsed_s),
            "fanout": webview.fanout(p, results, self.fired), "notes": notes or [],
        }
        self._server.snapshot = webview.document(self._head, self._timeline, self._health, rest)

    def close(self) -> None:
        """Stops serving (idempotent); the CLI calls it when the command ends."""
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
            self._thread = None
        self._server.server_close()
