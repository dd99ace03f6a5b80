"""Micro-benchmarks of the hot paths: payload build + encode, histogram record and merge, delta pickling.

Run: pytest benchmarks/bench_core.py  (pytest-benchmark; not part of the test suite).
"""

from __future__ import annotations

import asyncio
import pickle

import numpy as np
import orjson
import pytest

from harness.core.histogram import Histogram
from harness.core.recorder import Recorder
from harness.core.simclock import iso_duration, rfc3339
from harness.dialects import Site, get

D = get("openadr-3.0.1")


@pytest.mark.parametrize("sites", [1, 4])
def test_report_build_and_encode(benchmark: pytest.FixtureRequest, sites: int) -> None:
    """One report body built by the dialect and encoded by orjson (what a VEN does per interval)."""
    ss = [Site(f"harness-ven-0000001-site-{i:03d}", 0.0123 * i, 2.5 * i) for i in range(sites)]
    start, dur = rfc3339(1_790_000_000.0), iso_duration(15)

    def build() -> bytes:
        return orjson.dumps(D.report("12", "34", "harness-ven-0000001", ss, start, dur).json)

    body = benchmark(build)
    assert body.startswith(b'{"objectType":"REPORT"')


def test_histogram_record_100k(benchmark: pytest.FixtureRequest) -> None:
    """Recording 100,000 latencies into a histogram (vectorised)."""
    values = np.random.default_rng(1).lognormal(np.log(2e7), 0.6, 100_000).astype(np.int64)

    def record() -> Histogram:
        h = Histogram.empty()
        h.record_ns(values)
        return h

    assert benchmark(record).total == 100_000


def test_histogram_merge(benchmark: pytest.FixtureRequest) -> None:
    """Merging one sparse worker delta into a dense total (what the supervisor does per delta per metric)."""
    h = Histogram.of_ns(np.random.default_rng(2).lognormal(np.log(2e7), 0.6, 5_000).astype(np.int64))
    sparse = h.to_sparse()
    total = Histogram.empty()

    def merge() -> None:
        nonlocal total
        total += Histogram.from_sparse(sparse)

    benchmark(merge)


def test_recorder_ok_and_flush_per_second_at_5k_rps(benchmark: pytest.FixtureRequest) -> None:
    """One second of a worker at 5,000 requests/s: 5,000 records, then one flush into a delta."""

    def second() -> object:
        rec = Recorder()
        for i in range(5000):
            t = i * 0.0002
            rec.ok("report", t, t + 0.0001, t + 0.002)
        return rec.flush()

    ops, _ = benchmark(second)
    assert ops["report"].ok == 5000


def test_delta_pickle_size_and_time(benchmark: pytest.FixtureRequest) -> None:
    """Pickling one delta (6 operations, sparse histograms): the per-second cost on the results queue."""
    rec = Recorder()
    rng = np.random.default_rng(3)
    for op in ("token", "create_ven", "find_ven", "create_resource", "poll_events", "report"):
        for x in rng.lognormal(np.log(0.02), 0.6, 2000):
            rec.ok(op, 0.0, 0.0, float(x))
    delta = rec.flush()
    data = benchmark(pickle.dumps, delta)
    benchmark.extra_info["delta_bytes"] = len(data)
    assert len(data) < 100_000


def test_report_operation_python_cost(benchmark: pytest.FixtureRequest) -> None:
    """One VEN's report operation end to end but for the socket (ShardVens.report through an instant transport):
    read the meter, build the readings and the body, token check, encode, record. The Python share of a request
    on the worker's hot path; what the socket and the loop add shows in macro.py."""
    import asyncio
    import time

    from harness.core.fleet import FleetSpec, build_shard
    from harness.core.shard import Credentials, ShardSpec
    from harness.core.simclock import SimClock
    from harness.dialects import Request
    from harness.meter import Meter
    from harness.net.base import Reply
    from harness.net.wire import encode
    from harness.run.ven import ShardVens

    class Instant:
        """Encodes like the real transports and answers 201 at once (the coroutine never suspends)."""

        async def send(self, req: Request, token: str | None = None) -> Reply:
            encode(req)
            return Reply(201, b'{"id":"1"}')

        async def close(self) -> None:
            return None

    n = 1000
    spec = ShardSpec(worker_id=0, fleet=FleetSpec(vens=n), ven_start=0, ven_stop=n, seed=1, target="http://x",
                     program_id="1", event_id="2", interval_s=15.0, duration_s=60.0, reports_per_ven=None,
                     connection="pooled", pool_size=64, timeout_s=10.0, credentials=Credentials(), meter_tick_s=900.0)
    shard = build_shard(spec.fleet, spec.seed, 0, n)
    now = time.time()
    meter = Meter(shard, spec.seed, now, spec.meter_tick_s)
    transport = Instant()
    vens = ShardVens(spec, shard, meter, get(spec.dialect), Recorder(), lambda row: transport, SimClock(now, 1.0))
    vens.t0 = time.monotonic()
    vens.calls.token = ["token-of-this-ven"] * n
    vens.calls.token_expiry[:] = np.inf

    async def prime() -> None:  # the meter's first snapshot comes from its thread, inside a loop
        await vens.advance_meter(meter.tick_at(now))
        if vens.feed.next_tick is not None:
            await vens.feed.next_tick

    asyncio.run(prime())
    rows = iter(range(1 << 62))

    def one() -> None:
        coro = vens.report(next(rows) % n, time.monotonic())
        try:
            coro.send(None)
        except StopIteration as stop:
            assert stop.value is True
        else:  # pragma: no cover - the instant transport never suspends
            raise AssertionError("report() suspended")

    benchmark(one)
    assert vens.rec.total_ok > 0


STEPS = ("timestamps", "sites", "body", "encode", "template", "head", "record", "task")


@pytest.mark.parametrize("step", STEPS)
def test_report_step_cost(benchmark: pytest.FixtureRequest, step: str) -> None:
    """The report operation's Python work split into its steps, each timed alone (compare with
    test_report_operation_python_cost, the whole of it, and macro.py, which adds the socket and the loop):
    timestamps (rfc3339 + iso_duration), sites (one Site per site), body (the dialect's request), encode (orjson),
    template (what replaces sites, body and encode on the report path: the body from its shape's template, run/bodies.py), head (the lean client's request head), record (Recorder.ok), task (create, run and finish one no-op task on
    the loop, as the lifecycle does per operation)."""
    import asyncio
    import time

    import uvloop

    from harness.net.h1client import H1Transport
    from harness.net.wire import encode

    now = time.time()
    name = "harness-ven-0000001"
    sites = [Site(f"{name}-site-000", 0.0123, 2.5)]
    req = D.report("1", "2", name, sites, rfc3339(now), iso_duration(15))
    rec = Recorder()
    loop = uvloop.new_event_loop()

    async def make() -> H1Transport:
        return H1Transport("http://127.0.0.1:9/openadr3/3.0.1", limit=1, timeout_s=5.0)

    transport = loop.run_until_complete(make())
    body, ctype = encode(req)
    import orjson

    from harness.dialects import Request
    from harness.run.bodies import ReportTemplates

    template = ReportTemplates(D, "1", "2", "ven", tag=True).get(1)
    assert template is not None
    start, duration = rfc3339(now), iso_duration(15)

    def templated() -> bytes | None:
        b = template.render(name, start, duration, "hr1:tag:1:7", [0.0123], [2.5])
        return encode(Request("POST", template.path, json=orjson.Fragment(b)))[0]

    async def noop() -> None:
        return None

    async def tasks(n: int) -> None:
        for _ in range(n):
            await loop.create_task(noop())

    fns = {
        "timestamps": lambda: (rfc3339(now), iso_duration(15.0)),
        "sites": lambda: [Site(f"{name}-site-{s:03d}", float(s) * 0.1 - 0.05, float(s)) for s in range(1)],
        "body": lambda: D.report("1", "2", name, sites, rfc3339(now), iso_duration(15)),
        "encode": lambda: encode(req),
        "template": templated,
        "head": lambda: transport._head(req, "/openadr3/3.0.1/reports", "token-of-this-ven", body, ctype),
        "record": lambda: rec.ok("report", 1.0, 1.001, 1.002),
        "task": lambda: loop.run_until_complete(tasks(100)),  # per 100 tasks: divide by 100
    }
    try:
        benchmark(fns[step])
    finally:
        loop.close()


@pytest.mark.parametrize("how", ("call_at", "fifo"))
def test_request_deadline_cost(benchmark: pytest.FixtureRequest, how: str) -> None:
    """A request's timeout, side by side: a uvloop timer per request (call_at, then cancel when the reply comes:
    what the lean client did) against the shared deadline FIFO it uses now (track, then mark done). Per 100
    requests with 64 in flight, as on a saturated worker."""
    from collections import deque

    import uvloop

    from harness.net import deadlines

    loop = uvloop.new_event_loop()

    async def make() -> deadlines.Deadlines:
        return deadlines.deadlines(loop, 10.0)

    fifo = loop.run_until_complete(make())

    def expire(_: object) -> None:  # pragma: no cover - no deadline passes within the benchmark
        raise AssertionError("expired")

    def timers() -> None:
        live: deque[asyncio.TimerHandle] = deque()
        for _ in range(100):
            live.append(loop.call_at(loop.time() + 10.0, expire, None))
            if len(live) >= 64:
                live.popleft().cancel()
        while live:
            live.popleft().cancel()

    def entries() -> None:
        live: deque[list[object]] = deque()
        for _ in range(100):
            live.append(fifo.track(loop.time() + 10.0))
            if len(live) >= 64:
                live.popleft()[1] = deadlines.DONE
        while live:
            live.popleft()[1] = deadlines.DONE

    try:
        benchmark(timers if how == "call_at" else entries)
    finally:
        loop.close()
