"""Where a worker's CPU and memory go, piece by piece (the figures behind docs/performance.md's breakdowns).

Run: python benchmarks/anatomy.py client [--seconds 5]    # the lean client alone: CPU per request, no schedule or VEN state
     python benchmarks/anatomy.py state [--vens 200000]    # bytes per VEN of the shard, the meter and the VEN state (tracemalloc)
     python benchmarks/anatomy.py conns [--vens 8000]      # RSS per kept-alive lean-client connection (one VEN's own, per-VEN mode)
`client` and `conns` start the null VTN (harness.vtn.null) on a free loopback port. macro.py measures the whole path.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import time
import tracemalloc
from typing import Any

import uvloop

from harness.dialects import Request
from harness.net.h1client import H1Transport
from harness.vtn import EmbeddedVtn, VtnConfig

BODY = {"objectType": "REPORT", "programID": "1", "eventID": "2", "clientName": "harness-ven-0000001", "pad": "x" * 480}


def client(seconds: float) -> None:
    """64 coroutines sending through one H1Transport(limit=64): what the client costs without harness around it."""

    async def main(url: str) -> tuple[int, float]:
        t = H1Transport(url, limit=64, timeout_s=10.0)
        req, stop, n = Request("POST", "/reports", json=BODY), [False], [0]

        async def one() -> None:
            while not stop[0]:
                await t.send(req, "null-token")
                n[0] += 1

        tasks = [asyncio.ensure_future(one()) for _ in range(64)]
        await asyncio.sleep(1.5)  # warm-up: connections open, caches full
        n0, c0 = n[0], time.process_time()
        await asyncio.sleep(seconds)
        n1, c1 = n[0], time.process_time()
        stop[0] = True
        await asyncio.gather(*tasks)
        await t.close()
        return n1 - n0, c1 - c0

    with EmbeddedVtn(VtnConfig(null=True)) as vtn, asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        n, cpu = r.run(main(vtn.url))
    print(f"lean client alone: {n / seconds:,.0f} requests/s, {cpu / n * 1e6:.1f} µs of CPU per request "
          f"({n / cpu:,.0f} per CPU-second)")


def state(vens: int) -> None:
    """tracemalloc of what a worker builds for its shard before the first request, per VEN."""
    from harness.core.fleet import FleetSpec, build_shard
    from harness.core.recorder import Recorder
    from harness.core.shard import Credentials, ShardSpec
    from harness.core.simclock import SimClock
    from harness.dialects import get
    from harness.meter import Meter
    from harness.run.ven import ShardVens

    from harness.host.collector import trim

    def rss() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    base = rss()
    tracemalloc.start(3)
    spec = ShardSpec(worker_id=0, fleet=FleetSpec(vens=vens), ven_start=0, ven_stop=vens, seed=1, target="http://x",
                     program_id="1", event_id="2", interval_s=60.0, duration_s=100.0, reports_per_ven=None,
                     connection="pooled", pool_size=64, timeout_s=10.0, credentials=Credentials())
    snaps = [tracemalloc.take_snapshot()]
    shard = build_shard(spec.fleet, spec.seed, 0, vens)
    snaps.append(tracemalloc.take_snapshot())
    now = time.time()
    meter = Meter(shard, spec.seed, now, spec.meter_tick_s)
    snaps.append(tracemalloc.take_snapshot())
    held: Any = ShardVens(spec, shard, meter, get(spec.dialect), Recorder(), lambda row: None, SimClock(now, 1.0))
    snaps.append(tracemalloc.take_snapshot())
    for name, a, b in zip(("shard", "meter", "VEN and call state"), snaps, snaps[1:]):
        diff = sorted(b.compare_to(a, "lineno"), key=lambda d: -d.size_diff)
        print(f"{name}: {sum(d.size_diff for d in diff) / vens:,.0f} B per VEN; largest:")
        for d in diff[:6]:
            print(f"  {d.size_diff / vens:6.0f} B  {d.traceback[0].filename.rsplit('/', 2)[-1]}:{d.traceback[0].lineno}")
    tracemalloc.stop()
    del snaps
    gc.collect()
    built = rss()
    trim()  # what a worker does once its state is built (harness.host.collector.freeze)
    print(f"RSS per VEN: {(built - base) / vens:,.0f} B once built, {(rss() - base) / vens:,.0f} B after malloc_trim")
    del held


def conns(vens: int) -> None:
    """RSS per VEN's own kept-alive connection: N one-connection transports, each after one request."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if vens + 100 > hard:
        raise SystemExit(f"--vens {vens}: more than this process may open (open-files hard limit {hard}); use fewer")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))

    def rss() -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")

    async def main(url: str) -> float:
        req = Request("POST", "/reports", json=BODY)
        first = H1Transport(url, limit=1, timeout_s=10.0)
        await first.send(req, "null-token")  # warm: the loop's buffers, the caches
        gc.collect()
        before = rss()
        ts = [H1Transport(url, limit=1, timeout_s=10.0) for _ in range(vens)]
        sem = asyncio.Semaphore(256)

        async def one(t: H1Transport) -> None:
            async with sem:
                await t.send(req, "null-token")

        await asyncio.gather(*(one(t) for t in ts))
        gc.collect()
        per = (rss() - before) / vens
        for t in [first, *ts]:
            await t.close()
        return per

    # The null VTN holds every connection: in 2 processes, each under its own open-files limit.
    with EmbeddedVtn(VtnConfig(null=True, processes=2)) as vtn, asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        per = r.run(main(vtn.url))
    print(f"{vens:,} kept-alive connections: {per:,.0f} B of RSS per connection (H1Transport, its connection, "
          "uvloop's transport and libuv's handle)")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("what", choices=["client", "state", "conns"])
    ap.add_argument("--seconds", type=float, default=5.0, help="client: measured seconds")
    ap.add_argument("--vens", type=int, default=None, help="state: VENs in the shard (200,000); conns: connections (8,000)")
    a = ap.parse_args()
    if a.what == "client":
        client(a.seconds)
    elif a.what == "state":
        state(a.vens or 200_000)
    else:
        conns(a.vens or 8_000)


if __name__ == "__main__":
    main()
