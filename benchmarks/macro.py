"""Macro benchmark: harness's full path next to a raw aiohttp loop, Locust, a raw-protocol ceiling and wrk, against one null VTN on loopback.

Run: python benchmarks/macro.py [--seconds 8] [--repeats 3]            # throughput per core, side by side
     python benchmarks/macro.py --scale 25k|40k|1m|provision|supervisor     # fleet-size and supervisor runs
     python benchmarks/macro.py --ab OTHER_CHECKOUT [--seconds 5] [--repeats 6] [--offer-interval 0.75]  # this tree (B) vs another (A)
Every client sends the same report body (built by the 3.0.1 dialect) to the same null VTN (harness.vtn.null,
canned answers, stores nothing). "Per core" is requests per CPU-second of the client process over a measured
interval after warm-up, so a noisy 2-core box still gives comparable figures; rounds are interleaved and each
figure is the median of the rounds, each ratio the median of the per-round ratios to the raw loop.
"""

from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
CONCURRENCY = 64
# harness's offered load: 6,000 VENs every 0.1 s, 60,000 reports/s, about twice what one worker sends, so it runs
# flat out with its open model queueing the rest. (At 0.4 s and then 0.2 s, a faster worker kept up and idled: its
# figure was the offer, not its capacity — a round's CPU % below ~100 says so.)
OFFER_VENS, OFFER_INTERVAL_S = 6000, 0.1


def pin_apart(vtn: Any) -> str:
    """The null VTN on the first CPU, this process and every client it starts afterwards on the others. Left to
    the scheduler, a 2-core box put client and VTN now on one core, now on two, and a round's figure jumped
    between two levels (16,600 and 25,000 for the same code) with it."""
    cpus = sorted(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else []
    if len(cpus) < 2 or vtn.pid is None:
        return "not pinned (one CPU)"
    for tid in os.listdir(f"/proc/{vtn.pid}/task"):  # every thread of the VTN's process
        os.sched_setaffinity(int(tid), {cpus[0]})
    os.sched_setaffinity(0, set(cpus[1:]))
    return f"null VTN on CPU {cpus[0]}, clients on CPU {','.join(map(str, cpus[1:]))}"


# ---- the shared request ---------------------------------------------------------------------------
def report_body() -> bytes:
    import orjson

    from harness.core.simclock import iso_duration, rfc3339
    from harness.dialects import Site, get

    req = get("openadr-3.0.1").report("1", "2", "harness-ven-0000001",
                                      [Site("harness-ven-0000001-site-000", 0.0123, 2.5)], rfc3339(time.time()), iso_duration(15))
    return bytes(orjson.dumps(req.json))


HEADERS = {"Accept": "application/json", "Content-Type": "application/json", "Authorization": "Bearer null-token"}


# ---- raw aiohttp + uvloop loop (the Python ceiling) -----------------------------------------------
def _raw_child(url: str, body: bytes, warm_s: float, seconds: float, out: Any) -> None:
    import asyncio

    import aiohttp
    import uvloop

    async def main() -> tuple[int, float, float]:
        count = 0
        counting = False
        stop = False
        conn = aiohttp.TCPConnector(limit=CONCURRENCY)
        async with aiohttp.ClientSession(connector=conn, skip_auto_headers=("User-Agent",)) as s:
            async def one() -> None:
                nonlocal count
                while not stop:
                    async with s.post(url + "/reports", data=body, headers=HEADERS) as r:
                        await r.read()
                    if counting:
                        count += 1

            tasks = [asyncio.ensure_future(one()) for _ in range(CONCURRENCY)]
            await asyncio.sleep(warm_s)
            counting, cpu0, t0 = True, time.process_time(), time.monotonic()
            await asyncio.sleep(seconds)
            counting, cpu1, t1 = False, time.process_time(), time.monotonic()
            stop = True
            await asyncio.gather(*tasks)
        return count, cpu1 - cpu0, t1 - t0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        out.put(r.run(main()))


def raw_loop(url: str, body: bytes, warm_s: float, seconds: float) -> dict[str, float]:
    return _in_child(_raw_child, url, body, warm_s, seconds)


# ---- raw uvloop Protocol + httptools (what Python can do at all: the ceiling) -------------------------
def _ceiling_child(url: str, body: bytes, warm_s: float, seconds: float, out: Any) -> None:
    """One keep-alive request at a time on each of CONCURRENCY connections, bytes written from one prepared
    request, the response parsed by httptools and dropped: no headers dict, no futures, no tasks per request."""
    import asyncio
    from urllib.parse import urlsplit

    import httptools
    import uvloop

    u = urlsplit(url)
    head = "".join(f"{k}: {v}\r\n" for k, v in HEADERS.items())
    request = (f"POST {u.path}/reports HTTP/1.1\r\nHost: {u.netloc}\r\n{head}"
               f"Content-Length: {len(body)}\r\n\r\n").encode() + body
    state = {"count": 0, "counting": False, "stop": False}

    class Conn(asyncio.Protocol):
        def __init__(self, closed: asyncio.Future[None]) -> None:
            self.closed = closed
            self.parser = httptools.HttpResponseParser(self)
            self.transport: Any = None

        def connection_made(self, transport: Any) -> None:  # uvloop's TCPTransport (not an asyncio.Transport subclass)
            self.transport = transport
            transport.write(request)

        def data_received(self, data: bytes) -> None:
            self.parser.feed_data(data)

        def on_message_complete(self) -> None:  # httptools callback: one response done
            if state["counting"]:
                state["count"] += 1
            if state["stop"]:
                self.transport.close()
            else:
                self.transport.write(request)

        def connection_lost(self, exc: Exception | None) -> None:
            if not self.closed.done():
                self.closed.set_result(None)

    async def main() -> tuple[int, float, float]:
        loop = asyncio.get_running_loop()
        closed = [loop.create_future() for _ in range(CONCURRENCY)]
        for c in closed:
            await loop.create_connection(lambda c=c: Conn(c), u.hostname, u.port)
        await asyncio.sleep(warm_s)
        state["counting"], cpu0, t0 = True, time.process_time(), time.monotonic()
        await asyncio.sleep(seconds)
        state["counting"], cpu1, t1 = False, time.process_time(), time.monotonic()
        state["stop"] = True
        await asyncio.wait_for(asyncio.gather(*closed), 30)
        return int(state["count"]), cpu1 - cpu0, t1 - t0

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        out.put(r.run(main()))


def ceiling(url: str, body: bytes, warm_s: float, seconds: float) -> dict[str, float] | str:
    import importlib.util

    if importlib.util.find_spec("httptools") is None:
        return "skipped: httptools not installed (pip install httptools)"
    return _in_child(_ceiling_child, url, body, warm_s, seconds)


def _in_child(child: Any, url: str, body: bytes, warm_s: float, seconds: float) -> dict[str, float]:
    ctx = mp.get_context("spawn")
    q = ctx.Queue()
    p = ctx.Process(target=child, args=(url, body, warm_s, seconds, q))
    p.start()
    n, cpu, wall = q.get(timeout=warm_s + seconds + 60)
    p.join()
    return {"requests": n, "cpu_s": cpu, "wall_s": wall}


# ---- harness: the worker process entry the supervisor uses, driven directly -------------------------
def harness_worker(url: str, connection: str, vens: int, interval_s: float, warm_s: float, seconds: float,
                   workers: int = 1) -> dict[str, float]:
    """Reports/s per CPU-second of harness worker(s) (harness.run.worker.main): schedule, meter, payload, HTTP,
    recording, deltas — everything but the supervisor, which only merges one delta per second."""
    from harness.core.fleet import FleetSpec, split
    from harness.core.messages import Start, WorkerDelta, WorkerDone, WorkerFailed, WorkerReady
    from harness.core.shard import Credentials, ShardSpec
    from harness.run import worker as worker_mod

    ctx = mp.get_context("spawn")
    out = ctx.Queue()
    fleet = FleetSpec(vens=vens)
    procs, ctrls = [], []
    for i, (lo, hi) in enumerate(split(vens, workers)):
        spec = ShardSpec(worker_id=i, fleet=fleet, ven_start=lo, ven_stop=hi, seed=1, target=url, program_id="1",
                         event_id="2", interval_s=interval_s, duration_s=warm_s + seconds + 1.0, reports_per_ven=None,
                         connection=connection, pool_size=CONCURRENCY, timeout_s=10.0, credentials=Credentials())
        recv, send = ctx.Pipe(duplex=False)
        p = ctx.Process(target=worker_mod.main, args=(spec, recv, out))
        p.start()
        recv.close()
        procs.append(p)
        ctrls.append(send)
    ready = 0
    while ready < workers:
        m = out.get(timeout=120)
        if isinstance(m, WorkerFailed):
            raise RuntimeError(m.traceback)
        ready += isinstance(m, WorkerReady)
    for c in ctrls:
        c.send(Start(time.time() + 0.2))
    windows: dict[int, list[tuple[int, float, float, float]]] = {}
    done = 0
    while done < workers:
        m = out.get(timeout=warm_s + seconds + 60)
        if isinstance(m, WorkerDelta) and not m.is_final:
            op = m.ops.get("report")
            windows.setdefault(m.window, []).append(
                (op.ok if op else 0, m.health.cpu_percent / 100.0, m.health.rss_bytes, m.health.loop_lag_max_ms))
        elif isinstance(m, (WorkerDone, WorkerFailed)):
            done += 1
            if isinstance(m, WorkerFailed):
                raise RuntimeError(m.traceback)
    for c in ctrls:
        c.close()
    for p in procs:
        p.join(10)
    first = int(warm_s)
    measured = [w for k, w in sorted(windows.items()) if first <= k < first + int(seconds)]
    n = sum(ok for w in measured for ok, *_ in w)
    cpu = sum(c for w in measured for _, c, *_ in w)  # one-second windows: CPU fraction == CPU-seconds
    per_window = [sum(ok for ok, *_ in w) for w in measured]
    return {"requests": n, "cpu_s": cpu, "wall_s": float(len(measured)),
            "rss_mb": max(r for w in measured for *_, r, _ in w) / 2**20 if measured else 0.0,
            # Whether the figure is a steady rate: a worker whose loop stalls completes its reports in bursts with
            # empty seconds between (stop 31: 49,152, 0, 49,152 ...) and its per-core figure is not a capacity.
            "lag_max_ms": max((lag for w in measured for *_, lag in w), default=0.0),
            "window_min": float(min(per_window, default=0)), "window_max": float(max(per_window, default=0))}


STALL_MS = 1000.0  # a loop lag above this in a measured second: the worker's timers starved, not a steady rate


def stalled(r: dict[str, float]) -> bool:
    """A harness round whose loop lag passed STALL_MS or that had an empty second: bursts, not a steady rate."""
    return "lag_max_ms" in r and (r["lag_max_ms"] > STALL_MS or r["window_min"] == 0)


def steadiness(r: dict[str, float]) -> str:
    """For harness's rounds: the measured seconds' spread and loop lag, and STALLED if the figure is no capacity."""
    if "lag_max_ms" not in r:
        return ""
    flag = "  STALLED: not a capacity figure" if stalled(r) else ""
    return f"; per second {r['window_min']:,.0f}-{r['window_max']:,.0f}, loop lag max {r['lag_max_ms']:,.0f} ms{flag}"


# ---- Locust FastHttpUser (library mode, in its own process: gevent patches the world) ---------------
LOCUST_CHILD = textwrap.dedent('''
    import json, sys, time
    from locust import FastHttpUser, constant, task
    from locust.env import Environment
    import gevent
    url, body, warm, seconds, users = sys.argv[1], sys.argv[2].encode(), float(sys.argv[3]), float(sys.argv[4]), int(sys.argv[5])
    H = {"Accept": "application/json", "Content-Type": "application/json", "Authorization": "Bearer null-token"}
    class Ven(FastHttpUser):
        host = url
        wait_time = constant(0)
        @task
        def report(self):
            self.client.post("/reports", data=body, headers=H)
    env = Environment(user_classes=[Ven])
    runner = env.create_local_runner()
    runner.start(users, spawn_rate=users)
    gevent.sleep(warm)
    n0, c0 = env.stats.total.num_requests, time.process_time()
    gevent.sleep(seconds)
    n1, c1 = env.stats.total.num_requests, time.process_time()
    fails = env.stats.total.num_failures
    runner.quit()
    print(json.dumps({"requests": n1 - n0, "cpu_s": c1 - c0, "wall_s": seconds, "failures": fails}))
''')


def locust(url: str, body: bytes, warm_s: float, seconds: float) -> dict[str, float] | str:
    import importlib.util

    if importlib.util.find_spec("locust") is None:  # never import it here: it monkey-patches this process
        return "skipped: locust not installed (pip install locust)"
    r = subprocess.run([sys.executable, "-c", LOCUST_CHILD, url, body.decode(), str(warm_s), str(seconds), str(CONCURRENCY)],
                       capture_output=True, text=True, timeout=warm_s + seconds + 60)
    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
    if not lines:
        return f"skipped: locust failed: {r.stderr.strip().splitlines()[-1:]}"
    return json.loads(lines[-1])  # type: ignore[no-any-return]


# ---- wrk (C; the ceiling of the machine, not of Python) ----------------------------------------------
def wrk(url: str, body: bytes, warm_s: float, seconds: float) -> dict[str, float] | str:
    exe = shutil.which("wrk")
    if exe is None:
        return "skipped: wrk not installed (apt-get install -y wrk)"
    with tempfile.NamedTemporaryFile("w", suffix=".lua", delete=False) as f:
        f.write('wrk.method = "POST"\nwrk.body = ' + json.dumps(body.decode()) + "\n")
        for k, v in HEADERS.items():
            f.write(f'wrk.headers["{k}"] = "{v}"\n')
        script = f.name
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    r = subprocess.run([exe, "-t1", f"-c{CONCURRENCY}", f"-d{int(seconds)}s", "-s", script, url + "/reports"],
                       capture_output=True, text=True, timeout=seconds + 60)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    os.unlink(script)
    n = next((int(ln.split()[0]) for ln in r.stdout.splitlines() if "requests in" in ln), 0)
    cpu = (after.ru_utime + after.ru_stime) - (before.ru_utime + before.ru_stime)
    return {"requests": n, "cpu_s": cpu, "wall_s": seconds}


# ---- throughput: side by side -------------------------------------------------------------------------
def per_core(r: dict[str, float]) -> float:
    return r["requests"] / max(1e-9, r["cpu_s"])


def throughput(seconds: float, repeats: int, warm_s: float = 3.0) -> None:
    from harness.vtn import EmbeddedVtn, VtnConfig

    body = report_body()
    print(f"report body {len(body)} bytes; {CONCURRENCY} connections per client; {repeats} rounds of {seconds:g} s "
          f"after {warm_s:g} s warm-up; 1 client process each")
    # Offered load far above one worker's capacity: harness runs flat out (its open model queues the rest).
    clients = {
        "raw aiohttp+uvloop loop": lambda url: raw_loop(url, body, warm_s, seconds),
        "harness pooled (1 worker)": lambda url: harness_worker(url, "pooled", OFFER_VENS, OFFER_INTERVAL_S, warm_s, seconds),
        "harness per-VEN (1 worker)": lambda url: harness_worker(url, "per-ven", OFFER_VENS, OFFER_INTERVAL_S, warm_s, seconds),
        "locust FastHttpUser": lambda url: locust(url, body, warm_s, seconds),
        "raw Protocol+httptools (ceiling)": lambda url: ceiling(url, body, warm_s, seconds),
        "wrk (C)": lambda url: wrk(url, body, warm_s, seconds),
    }
    rounds: list[dict[str, dict[str, float] | str]] = []
    with EmbeddedVtn(VtnConfig(null=True)) as vtn:
        print(pin_apart(vtn))
        for i in range(repeats):
            res: dict[str, dict[str, float] | str] = {}
            for name, fn in clients.items():
                res[name] = fn(vtn.url)
                r = res[name]
                line = r if isinstance(r, str) else (f"{r['requests'] / r['wall_s']:9.0f} req/s at "
                                                     f"{100 * r['cpu_s'] / r['wall_s']:4.0f}% CPU -> {per_core(r):8.0f} /core"
                                                     f"{steadiness(r)}")
                print(f"  round {i + 1} {name:34s} {line}", flush=True)
            rounds.append(res)
    raw, loc, top = "raw aiohttp+uvloop loop", "locust FastHttpUser", "raw Protocol+httptools (ceiling)"

    def ratio(name: str, base: str) -> str:
        rs = [per_core(r[name]) / per_core(r[base]) for r in rounds  # type: ignore[arg-type]
              if not isinstance(r[name], str) and not isinstance(r[base], str)]
        return f"{statistics.median(rs):.2f}x" if rs else "-"

    print(f"\n{'client':34s} {'req/s per core (median)':>24s} {'to raw loop':>12s} {'to Locust':>10s} {'of ceiling':>11s}"
          "   (ratios: median of the per-round ratios)")
    for name in clients:
        ok = [r[name] for r in rounds if not isinstance(r[name], str)]
        if not ok:
            print(f"{name:34s} {rounds[0][name]}")
            continue
        med = statistics.median(per_core(r) for r in ok)  # type: ignore[arg-type]
        print(f"{name:34s} {med:24.0f} {ratio(name, raw):>12s} {ratio(name, loc):>10s} {ratio(name, top):>11s}")
    for name in clients:
        n_stalled = sum(stalled(r[name]) for r in rounds if not isinstance(r[name], str))
        if n_stalled:
            print(f"{name}: {n_stalled} of {len(rounds)} rounds STALLED (loop lag > {STALL_MS:.0f} ms or an empty "
                  "second): its figure is bursts of a starved loop, not a steady capacity")


# ---- A/B: this checkout's worker against another checkout's, interleaved ------------------------------
AB_CHILD = textwrap.dedent('''
    import json, sys
    if __name__ == "__main__":
        sys.path.insert(0, sys.argv[1] + "/benchmarks")
        from macro import harness_worker, per_core
        r = harness_worker(sys.argv[2], sys.argv[3], int(sys.argv[5]), float(sys.argv[6]), 3.0, float(sys.argv[4]))
        print(json.dumps({"per_core": per_core(r), **r}))
''')


def ab(other: Path, seconds: float, repeats: int, interval_s: float = OFFER_INTERVAL_S) -> None:
    """harness pooled and per-VEN from two source trees, A (other) and B (this one), one after the other in every
    round against the same null VTN: each tree's worker runs with that tree first on sys.path. On a shared box
    the per-round ratio B/A moves far less than either figure; the median of the per-round ratios is the result."""
    from harness.vtn import EmbeddedVtn, VtnConfig

    trees = {"A": other.resolve(), "B": HERE.parent}
    if not (trees["A"] / "harness" / "__init__.py").is_file():
        raise SystemExit(f"--ab: {other} is not a harness checkout (no harness/__init__.py): give the other tree's top folder")
    script = Path(tempfile.mkdtemp()) / "ab_child.py"
    script.write_text(AB_CHILD)  # a file, not -c: the spawned worker re-imports its parent's main module
    per: dict[tuple[str, str], list[float]] = {}
    with EmbeddedVtn(VtnConfig(null=True)) as vtn:
        print(pin_apart(vtn))
        for i in range(repeats):
            for mode in ("pooled", "per-ven"):
                for name, tree in trees.items():
                    env = {**os.environ, "PYTHONPATH": str(tree)}
                    r = subprocess.run([sys.executable, str(script), str(tree), vtn.url, mode, str(seconds),
                                        str(OFFER_VENS), str(interval_s)], cwd=tree,
                                       env=env, capture_output=True, text=True, timeout=seconds + 120)
                    lines = [ln for ln in r.stdout.splitlines() if ln.startswith("{")]
                    if not lines:
                        raise SystemExit(f"--ab: the {name} worker failed: {r.stderr.strip().splitlines()[-1:]}")
                    got = json.loads(lines[-1])
                    per.setdefault((name, mode), []).append(got["per_core"])
                    print(f"  round {i + 1} {mode:8s} {name} {got['per_core']:8.0f} reports per CPU-second "
                          f"({100 * got['cpu_s'] / max(1e-9, got['wall_s']):.0f}% CPU){steadiness(got)}", flush=True)
    print(f"\nA = {trees['A']}, B = {trees['B']}")
    for mode in ("pooled", "per-ven"):
        a, b = per[("A", mode)], per[("B", mode)]
        rs = [y / x for x, y in zip(a, b)]
        print(f"{mode:8s} A {statistics.median(a):8.0f}  B {statistics.median(b):8.0f}  B/A {statistics.median(rs):.2f}x "
              f"(per round {min(rs):.2f}-{max(rs):.2f})")


# ---- scale: fleets through the CLI, figures from summary.json -------------------------------------------
def harness_run(args: list[str], out: Path) -> dict[str, Any]:
    cmd = [sys.executable, "-m", "harness", "run", "--quiet", "--out", str(out), *args]
    print("$ harness run " + " ".join(args), flush=True)
    t = time.monotonic()
    env = {**os.environ, "HARNESS_BL_SECRET": "bl-secret", "HARNESS_VEN_SECRET": "ven-secret"}  # the null VTN checks none
    r = subprocess.run(cmd, capture_output=True, text=True, env=env)
    wall = time.monotonic() - t
    runs = sorted(out.glob("runs/*/summary.json"), key=lambda p: p.stat().st_mtime)
    if not runs:
        raise RuntimeError(f"no summary (exit {r.returncode}): {r.stderr[-2000:]}")
    doc: dict[str, Any] = json.loads(runs[-1].read_text())
    doc["_exit"], doc["_wall_s"] = r.returncode, wall
    return doc


def show(doc: dict[str, Any], vens: int, base_rss: float | None = None) -> None:
    ops = doc["operations"]
    print(f"  exit {doc['_exit']} verdict {doc['verdict']} {doc.get('reasons') or ''}")
    for name, o in ops.items():
        print(f"  {name:16s} ok {o['ok']:>9,} errors {o['errors']:>6,} rate {o['rate_per_s']:>8.1f}/s  "
              f"start_lag p99 {o['start_lag']['p99_ms']:.2f} ms max {o['start_lag']['max_ms']:.1f} ms  "
              f"service p99 {o['service_time']['p99_ms']:.2f} ms")
    rss = [w["rss_max_bytes"] / 2**20 for w in doc["workers"]]
    cpu = [w["cpu_percent_max"] for w in doc["workers"]]
    print(f"  workers RSS max {', '.join(f'{r:.0f}' for r in rss)} MiB (sum {sum(rss):.0f} MiB); CPU max "
          f"{', '.join(f'{c:.0f}' for c in cpu)} %")
    if base_rss is not None:
        print(f"  memory per VEN: {(sum(rss) - base_rss) * 2**20 / vens:,.0f} bytes "
              f"(({sum(rss):.0f} - {base_rss:.0f} MiB of workers with a 100-VEN fleet) / {vens:,})")


def scale(which: str, out: Path) -> None:
    from harness.vtn import EmbeddedVtn, VtnConfig

    out.mkdir(parents=True, exist_ok=True)
    if which == "25k":
        # 25,000 connections: 2 workers hold 12,500 sockets each and the null VTN serves them from 2 processes
        # (SO_REUSEPORT), each under the 20,000 open-files limit; 25,000 < 28,232 ephemeral ports to one address.
        with EmbeddedVtn(VtnConfig(null=True, processes=2)) as vtn:
            common = ["--target", vtn.url, "--workers", "2", "--connection", "per-ven", "--interval", "15s"]
            base = harness_run([*common, "--vens", "100", "--duration", "20s"], out)
            base_rss = sum(w["rss_max_bytes"] for w in base["workers"]) / 2**20
            # VENs come online over 60 s (25,000 connects + 75,000 provisioning requests), then steady state is measured.
            doc = harness_run([*common, "--vens", "25000", "--startup", "60s", "--duration", "150s", "--warmup", "90s"], out)
            show(doc, 25_000, base_rss)
    elif which == "40k":
        # 40,000 own connections to one address: more than one source address's ephemeral ports (28,232), so the
        # supervisor spreads them over 127.0.0.1 and 127.0.0.2; 3 workers and 3 VTN processes keep every process
        # under the 20,000 open-files limit.
        with EmbeddedVtn(VtnConfig(null=True, processes=3)) as vtn:
            common = ["--target", vtn.url, "--workers", "3", "--connection", "per-ven", "--interval", "15s"]
            base = harness_run([*common, "--vens", "100", "--duration", "20s"], out)
            base_rss = sum(w["rss_max_bytes"] for w in base["workers"]) / 2**20
            doc = harness_run([*common, "--vens", "40000", "--startup", "90s", "--duration", "180s", "--warmup", "120s"], out)
            show(doc, 40_000, base_rss)
            print(f"  source addresses: {', '.join(doc['run']['profile']['target_settings']['source_addresses'])}")
    elif which == "1m":
        with EmbeddedVtn(VtnConfig(null=True)) as vtn:
            common = ["--target", vtn.url, "--workers", "2", "--connection", "pooled", "--interval", "15m"]
            base = harness_run([*common, "--vens", "100", "--duration", "20s"], out)
            base_rss = sum(w["rss_max_bytes"] for w in base["workers"]) / 2**20
            # Every VEN provisions in the first interval (3 requests each, ~3,300/s) and reports from its second:
            # 31 minutes with the first 15 as warm-up measure all 1,000,000 VENs reporting in steady state.
            duration = os.environ.get("MACRO_1M_DURATION", "31m")
            warmup = os.environ.get("MACRO_1M_WARMUP", "15m")
            args = [*common, "--vens", "1000000", "--duration", duration, "--warmup", warmup, "--timeout", "30s"]
            sys.path.insert(0, str(HERE))
            from proctree import run_sampled

            cmd = [sys.executable, "-m", "harness", "run", "--quiet", "--out", str(out), *args]
            print("$ harness run " + " ".join(args), flush=True)
            env = {**os.environ, "HARNESS_BL_SECRET": "bl-secret", "HARNESS_VEN_SECRET": "ven-secret"}
            os.environ.update(env)
            code, wall, tracks = run_sampled(cmd, 2.0)
            runs = sorted(out.glob("runs/*/summary.json"), key=lambda p: p.stat().st_mtime)
            doc = json.loads(runs[-1].read_text())
            doc["_exit"], doc["_wall_s"] = code, wall
            show(doc, 1_000_000, base_rss)
            peak = {t.pid: max(t.rss, default=0) for t in tracks.values()}
            print(f"  peak RSS of the whole harness process tree: {sum(peak.values()) / 2**30:.2f} GiB "
                  f"({', '.join(f'{t.role} {max(t.rss, default=0) / 2**20:.0f} MiB' for t in tracks.values())}); "
                  f"wall {wall / 60:.1f} min")
    elif which == "provision":
        # 10,000 VENs provisioned against the embedded (SQLite) VTN: token + create VEN + create resource each,
        # all due within the first interval; the rate is VENs provisioned per second of that burst.
        doc = harness_run(["--vens", "10000", "--interval", "5s", "--reports-per-ven", "1", "--workers", "1",
                           "--connection", "pooled", "--max-loop-lag", "10s"], out)
        show(doc, 10_000)
        import csv

        run_dir = sorted(out.glob("runs/*/summary.json"), key=lambda p: p.stat().st_mtime)[-1].parent
        secs = [int(r["t_s"]) for r in csv.DictReader((run_dir / "series.csv").open())
                if r["operation"] == "create_resource" and int(r["ok"]) > 0]
        n = doc["operations"]["create_resource"]["ok"]
        span = max(secs) - min(secs) + 1 if secs else float("nan")
        print(f"  provisioning: {n:,} VENs (token + create VEN + create resource) in {span} s -> {n / span:,.0f} VENs/s "
              f"({3 * n / span:,.0f} requests/s) against the embedded VTN")
    elif which == "supervisor":
        # The supervisor's CPU at two request rates: it merges one delta per worker per second, whatever the rate.
        with EmbeddedVtn(VtnConfig(null=True)) as vtn:
            for vens in (300, 3000):
                cmd = [sys.executable, str(HERE / "proctree.py"), "--", sys.executable, "-m", "harness", "run", "--quiet",
                       "--out", str(out), "--target", vtn.url, "--workers", "1", "--connection", "pooled",
                       "--vens", str(vens), "--interval", "1s", "--duration", "20s"]
                r = subprocess.run(cmd, capture_output=True, text=True, cwd=out,
                                   env={**os.environ, "HARNESS_BL_SECRET": "x", "HARNESS_VEN_SECRET": "x"})
                print(f"--- {vens / 1:.0f} reports/s offered")
                print(r.stdout)
    else:
        raise SystemExit(f"--scale must be 25k, 40k, 1m, provision or supervisor, got {which!r}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=8.0, help="measured seconds per client per round")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--scale", choices=["25k", "40k", "1m", "provision", "supervisor"])
    ap.add_argument("--out", type=Path, default=Path(tempfile.gettempdir()) / "harness-macro")
    ap.add_argument("--ab", type=Path, metavar="OTHER_CHECKOUT",
                    help="A/B: harness's worker from another source tree (A, e.g. a `git worktree` of main) against this one (B)")
    ap.add_argument("--offer-interval", type=float, default=OFFER_INTERVAL_S, metavar="S",
                    help=f"--ab: each of the {OFFER_VENS:,} VENs reports every S seconds (default {OFFER_INTERVAL_S}: flat out; "
                         "0.75: 8,000/s, below saturation, for CPU per report at a fixed rate)")
    a = ap.parse_args()
    if a.ab:
        ab(a.ab, a.seconds, a.repeats, a.offer_interval)
    elif a.scale:
        scale(a.scale, a.out)
    else:
        throughput(a.seconds, a.repeats)


if __name__ == "__main__":
    main()
