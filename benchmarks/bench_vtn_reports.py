"""Report-POST throughput of the embedded VTN: an EmbeddedVtn child and a load process hammering POST /reports.

A benchmark, not a test: `tox -e bench` runs a 3-second measurement; for a longer one run it as a script, e.g.
    python benchmarks/bench_vtn_reports.py --seconds 10 --connections 64
It prints the accepted-report rate and the rate per second of VTN CPU time.
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing
import tempfile
import time
from pathlib import Path

import aiohttp
import orjson
import psutil
import uvloop

from harness.vtn import EmbeddedVtn, VtnConfig


def report(program_id: str, event_id: str, resources: int, intervals: int) -> bytes:
    return orjson.dumps({
        "programID": program_id, "eventID": event_id, "clientName": "bench", "reportName": "usage",
        "payloadDescriptors": [{"objectType": "REPORT_PAYLOAD_DESCRIPTOR", "payloadType": "USAGE", "units": "KWH"}],
        "resources": [{
            "resourceName": f"site-{r}",
            "intervalPeriod": {"start": "2026-01-01T10:00:00Z", "duration": "PT15M"},
            "intervals": [{"id": i, "payloads": [{"type": "USAGE", "values": [0.25 * i]},
                                                 {"type": "DEMAND", "values": [1.5]}]} for i in range(intervals)],
        } for r in range(resources)],
    })


async def load(url: str, seconds: float, connections: int, resources: int, intervals: int) -> tuple[int, int, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=connections)) as s:
        async def post(path: str, token: str, body: dict[str, object]) -> dict[str, object]:
            async with s.post(url + path, json=body, headers={"Authorization": f"Bearer {token}"}) as r:
                assert r.status == 201, await r.text()
                return dict(await r.json())

        async def token(cid: str, secret: str) -> str:
            form = {"grant_type": "client_credentials", "client_id": cid, "client_secret": secret}
            async with s.post(url + "/auth/token", data=form) as r:
                return str((await r.json())["access_token"])

        bl = await token("bl", "bl-secret")
        p = await post("/programs", bl, {"programName": "bench"})
        e = await post("/events", bl, {"programID": p["id"], "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]})
        body = report(str(p["id"]), str(e["id"]), resources, intervals)
        ok = bad = 0
        deadline = time.monotonic() + seconds

        async def worker(i: int) -> None:
            nonlocal ok, bad
            tok = await token(f"ven-bench-{i}", "ven-secret")
            headers = {"Authorization": f"Bearer {tok}", "Content-Type": "application/json"}
            while time.monotonic() < deadline:
                async with s.post(url + "/reports", data=body, headers=headers) as r:
                    await r.read()
                    if r.status == 201:
                        ok += 1
                    else:
                        bad += 1

        t0 = time.monotonic()
        await asyncio.gather(*(worker(i) for i in range(connections)))
        return ok, bad, time.monotonic() - t0


def load_main(url: str, seconds: float, connections: int, resources: int, intervals: int, out: "multiprocessing.Queue[object]") -> None:
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        out.put(r.run(load(url, seconds, connections, resources, intervals)))


def measure(seconds: float, connections: int, resources: int, intervals: int, commit_interval_s: float) -> str:
    """One bounded run against a fresh embedded VTN; the figures as one line."""
    with tempfile.TemporaryDirectory() as tmp:
        config = VtnConfig(db_path=str(Path(tmp) / "bench.sqlite"), commit_interval_s=commit_interval_s)
        with EmbeddedVtn(config) as vtn:
            proc = psutil.Process(vtn.pid)
            ctx = multiprocessing.get_context("spawn")
            q: "multiprocessing.Queue[object]" = ctx.Queue()
            cpu0 = proc.cpu_times()
            lp = ctx.Process(target=load_main, args=(vtn.url, seconds, connections, resources, intervals, q))
            lp.start()
            ok, bad, elapsed = q.get(timeout=seconds + 60)  # type: ignore[misc]
            lp.join(timeout=30)
            cpu1 = proc.cpu_times()
            cpu = (cpu1.user - cpu0.user) + (cpu1.system - cpu0.system)
            size = Path(config.db_path).stat().st_size
    body_len = len(report("prg-1", "evt-1", resources, intervals))
    return (f"reports accepted: {ok} ({bad} failed) in {elapsed:.1f}s = {ok / elapsed:.0f}/s wall; "
            f"VTN CPU {cpu:.1f}s → {ok / max(cpu, 1e-9):.0f} reports per CPU-second; report body {body_len} B; "
            f"db {size / 1e6:.1f} MB")


def test_embedded_vtn_report_throughput() -> None:
    """3 s of 16 connections posting reports: every report accepted; the rates printed (-s shows them)."""
    line = measure(3.0, 16, 2, 4, VtnConfig.commit_interval_s)
    print(line)
    assert "(0 failed)" in line


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--resources", type=int, default=2)
    ap.add_argument("--intervals", type=int, default=4)
    ap.add_argument("--commit-interval", type=float, default=VtnConfig.commit_interval_s)
    args = ap.parse_args()
    print(measure(args.seconds, args.connections, args.resources, args.intervals, args.commit_interval))


if __name__ == "__main__":
    main()
