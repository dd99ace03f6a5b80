"""`harness run --prometheus [HOST:]PORT`: the run as a Prometheus exposition endpoint (prometheus-client).

Edge sink. The families are built in the run's main thread at each snapshot and swapped in whole; the server's
threads (prometheus-client's WSGI server: one to accept, one per scrape) only hand out the last set, so a scrape
never sees a half-built one and nothing is locked. The socket is bound when the sink is made (a busy port is a
usage error before the run), the server thread starts with the workers, and at the end the endpoint stays up with
the final counts until one scrape has read them (or the linger runs out, or a signal came), then closes.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from wsgiref.simple_server import WSGIRequestHandler, make_server

import numpy as np
import numpy.typing as npt
from prometheus_client import CollectorRegistry, make_wsgi_app
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily, Metric
from prometheus_client.exposition import ThreadingWSGIServer

from harness.core.exits import UsageError
from harness.core.histogram import MID_NS, Histogram, bucket_index
from harness.core.results import RunResults
from harness.sinks.base import BaseSink, Outcome, RunControl, RunInfo, Snapshot
from harness.sinks.metricsview import RunState, Series, latencies, series

PREFIX = "harness_"
# Bucket bounds are harness's own bucket bounds, 8 a power of two (each 6.7-12.5 % wide) from 16 µs to 137 s: every
# harness bucket falls wholly in one, so each count below a bound is exact, not interpolated.
BOUNDS_NS: npt.NDArray[np.int64] = np.array(
    [(64 + 8 * j) << (k - 6) for k in range(14, 37) for j in range(8)] + [1 << 37], dtype=np.int64)
_BOUND_IDX = bucket_index(BOUNDS_NS)
_BOUND_LE = [f"{b / 1e9:.12g}" for b in BOUNDS_NS]
FINAL_WAIT_SLICE_S = 0.1


def parse_listen(flag: str, value: str, default_host: str = "127.0.0.1") -> tuple[str, int]:
    """`[HOST:]PORT` (IPv6 as `[::1]:PORT`) -> (host, port); a one-line UsageError otherwise."""
    host, sep, port_s = value.rpartition(":")
    host = host.strip("[]") if sep else default_host
    if not port_s.isdigit() or not 0 <= int(port_s) <= 65535 or (sep and not host):
        raise UsageError(f"{flag}: {value!r} is not [HOST:]PORT; give a port (e.g. 9464, or 0 for any free one) "
                         f"or HOST:PORT (e.g. 127.0.0.1:9464)")
    return host, int(port_s)


def histogram_buckets(h: Histogram) -> list[tuple[str, float]]:
    """Cumulative counts below each bound (as `le`), then +Inf: the total."""
    below = np.concatenate(([0], np.cumsum(h.counts)))[_BOUND_IDX]
    return [*zip(_BOUND_LE, below.astype(float).tolist()), ("+Inf", float(h.total))]


def families(results: RunResults, state: RunState) -> list[Metric]:
    """The run as Prometheus metric families: counters and gauges from the shared view, then the histograms."""
    out: list[Metric] = [_family(s) for s in series(results, state)]
    hists: dict[str, HistogramMetricFamily] = {}
    for lat in latencies(results):
        fam = hists.get(lat.name)
        if fam is None:
            fam = hists[lat.name] = HistogramMetricFamily(
                f"{PREFIX}{lat.name}_seconds", f"{lat.name} of each successful operation (harness's buckets; "
                "sum from bucket midpoints)", labels=list(lat.labels))
        fam.add_metric(list(lat.labels.values()), histogram_buckets(lat.hist), sum_value=_sum_s(lat.hist))
    return out + list(hists.values())


def _sum_s(h: Histogram) -> float:
    return float((h.counts * MID_NS).sum()) / 1e9


def _family(s: Series) -> Metric:
    name = PREFIX + s.name + (f"_{s.unit}" if s.unit else "")
    labels = sorted({k for lbl, _ in s.points for k in lbl})
    fam = (CounterMetricFamily if s.kind == "counter" else GaugeMetricFamily)(name, s.help, labels=labels)
    for lbl, v in s.points:
        fam.add_metric([lbl.get(k, "") for k in labels], v)
    return fam


class _Server6(ThreadingWSGIServer):
    address_family = socket.AF_INET6


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - the stdlib's name
        pass


class _Published:
    """The collector the registry asks at each scrape: the families last swapped in, and whether a scrape has read
    the final ones."""

    def __init__(self) -> None:
        self.current: tuple[Sequence[Metric], bool] = ([], False)
        self.final_read = threading.Event()

    def collect(self) -> Iterable[Metric]:
        fams, is_final = self.current  # one read: a whole set, never half of two
        if is_final:
            self.final_read.set()
        return fams


class PrometheusSink(BaseSink):
    """Serves the run at http://HOST:PORT/metrics from its start until its final counts have been scraped."""

    def __init__(self, listen: str, linger_s: float = 15.0, flag: str = "--prometheus",
                 say: Callable[[str], None] = lambda line: None) -> None:
        host, port = parse_listen(flag, listen)
        self.linger_s = linger_s
        self._say = say  # a line for the user (the CLI: stderr), while the end waits for a scrape
        self._published = _Published()
        registry = CollectorRegistry(auto_describe=False)
        registry.register(self._published)
        try:
            server_class = _Server6 if ":" in host else ThreadingWSGIServer
            self._server = make_server(host, port, make_wsgi_app(registry), server_class, handler_class=_Quiet)
        except (OSError, OverflowError) as exc:
            raise UsageError(f"{flag} {listen}: cannot listen on {host}:{port} ({getattr(exc, 'strerror', None) or exc}); "
                             "choose another address or port (0: any free one)") from None
        self.port: int = self._server.server_address[1]
        self.url = f"http://{host if ':' not in host else f'[{host}]'}:{self.port}/metrics"
        self._thread: threading.Thread | None = None
        self._control: RunControl | None = None
        self._t0_epoch_s = 0.0
        self._target_vens = 0
        self._is_closed = False

    def started(self, info: RunInfo) -> None:
        self._control, self._t0_epoch_s, self._target_vens = info.control, info.t0_epoch_s, info.profile.vens
        info.control.note(f"prometheus: {self.url}")
        self._publish(info.results, RunState(target_vens=self._target_vens))
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.1},
                                        name="harness-prometheus", daemon=True)
        self._thread.start()

    def snapshot(self, snap: Snapshot) -> None:
        self._publish(snap.results, RunState(elapsed_s=snap.elapsed_s, target_vens=self._target_vens))

    def finished(self, outcome: Outcome) -> None:
        elapsed_s = max(0.0, time.time() - self._t0_epoch_s) if self._t0_epoch_s else 0.0
        state = RunState(elapsed_s=elapsed_s, target_vens=self._target_vens, is_finished=True, verdict=outcome.verdict)
        self._published.current = (families(outcome.results, state), True)
        if self._thread is not None:
            self._await_final_scrape()
        self.close()

    def _publish(self, results: RunResults, state: RunState) -> None:
        self._published.current = (families(results, state), False)

    def _await_final_scrape(self) -> None:
        """Until a scrape has read the final counts, for linger_s at most, and not at all after a signal."""
        if self.linger_s <= 0 or (self._control and self._control.is_signalled()):
            return
        self._say(f"prometheus: final counts at {self.url}, up until a scrape reads them (at most "
                  f"{self.linger_s:g}s, --prometheus-linger)")
        deadline = time.monotonic() + self.linger_s
        while time.monotonic() < deadline and not (self._control and self._control.is_signalled()):
            if self._published.final_read.wait(FINAL_WAIT_SLICE_S):
                return

    def close(self) -> None:
        """Stops serving (idempotent): after the run, or when it failed before starting."""
        if self._is_closed:
            return
        self._is_closed = True
        if self._thread is not None:
            self._server.shutdown()
            self._thread.join()
        self._server.server_close()
