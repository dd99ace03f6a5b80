"""Which MQTT client library a worker should hold 10,000 VEN connections with: memory and CPU per connection.

A benchmark, not a test. One local Mosquitto (harness.vtn.Broker, on a free port); per library a fresh child
process that raises its open-files soft limit, opens N connections in one uvloop loop, subscribes each to two
topics (`bench/<i>` and `bench/all`), publishes one message to `bench/all` and waits until every connection has
received it. Measured in the child: RSS after minus RSS before (gc'd, libraries imported), CPU (user + sys) of the
connect + subscribe + receive phase, both per connection, and the wall time of each phase:

    python benchmarks/mqtt_clients.py [--connections 10000] [--libs gmqtt,aiomqtt,amqtt]
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import resource
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from typing import Any

import psutil  # type: ignore[import-untyped]
import uvloop

BATCH = 200  # connections opened at once
DEADLINE_S = 600.0  # per library, every phase together
LIBS = ("gmqtt", "aiomqtt", "amqtt")


def raise_nofile() -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return hard


# ---- one library per child process ---------------------------------------------------------------------------
class Bench:
    """The library-neutral part: counts received messages and signals when all have arrived."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.got = 0
        self.all = asyncio.Event()

    def received(self) -> None:
        self.got += 1
        if self.got >= self.n:
            self.all.set()


async def gmqtt_clients(b: Bench, host: str, port: int) -> tuple[Callable[[int], Awaitable[Any]], Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import gmqtt  # type: ignore[import-untyped]
    from gmqtt.mqtt.constants import MQTTv311  # type: ignore[import-untyped]

    clients: list[Any] = []
    subacks = asyncio.Event()
    acked = 0

    def on_message(*_: object) -> int:
        b.received()
        return 0

    def on_subscribe(*_: object) -> None:
        nonlocal acked
        acked += 1
        if acked == b.n:
            subacks.set()

    async def connect(i: int) -> None:
        c = gmqtt.Client(f"g{i}")
        c.on_message, c.on_subscribe = on_message, on_subscribe
        c.set_config({"reconnect_retries": 0})
        await c.connect(host, port, keepalive=600, version=MQTTv311)
        c.subscribe([gmqtt.Subscription(f"bench/{i}", qos=0), gmqtt.Subscription("bench/all", qos=0)])
        clients.append(c)

    async def subscribed() -> None:
        await subacks.wait()

    async def close() -> None:
        await asyncio.gather(*(c.disconnect() for c in clients), return_exceptions=True)

    return connect, subscribed, close


async def aiomqtt_clients(b: Bench, host: str, port: int) -> tuple[Callable[[int], Awaitable[Any]], Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    import aiomqtt

    clients: list[aiomqtt.Client] = []
    readers: list[asyncio.Task[None]] = []

    async def read(c: aiomqtt.Client) -> None:
        async for _ in c.messages:
            b.received()

    async def connect(i: int) -> None:
        c = aiomqtt.Client(host, port, identifier=f"a{i}", keepalive=600)
        await c.__aenter__()
        await c.subscribe([(f"bench/{i}", 0), ("bench/all", 0)])  # returns at SUBACK
        clients.append(c)
        readers.append(asyncio.get_running_loop().create_task(read(c)))

    return connect, _no_wait, _closer(readers, lambda: [c.__aexit__(None, None, None) for c in clients])


async def amqtt_clients(b: Bench, host: str, port: int) -> tuple[Callable[[int], Awaitable[Any]], Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]:
    from amqtt.client import MQTTClient  # type: ignore[import-untyped]
    from amqtt.mqtt.constants import QOS_0  # type: ignore[import-untyped]

    clients: list[MQTTClient] = []
    readers: list[asyncio.Task[None]] = []

    async def read(c: MQTTClient) -> None:
        while True:
            await c.deliver_message()
            b.received()

    async def connect(i: int) -> None:
        c = MQTTClient(client_id=f"m{i}", config={"auto_reconnect": False, "keep_alive": 600})
        await c.connect(f"mqtt://{host}:{port}/")
        await c.subscribe([(f"bench/{i}", QOS_0), ("bench/all", QOS_0)])  # returns at SUBACK
        clients.append(c)
        readers.append(asyncio.get_running_loop().create_task(read(c)))

    return connect, _no_wait, _closer(readers, lambda: [c.disconnect() for c in clients])


async def _no_wait() -> None:
    return None  # subscribe returned at SUBACK


def _closer(readers: list[asyncio.Task[None]], ends: Callable[[], list[Awaitable[Any]]]) -> Callable[[], Awaitable[None]]:
    async def close() -> None:
        for t in readers:
            t.cancel()
        await asyncio.gather(*readers, return_exceptions=True)
        await asyncio.gather(*ends(), return_exceptions=True)

    return close


FACTORIES = {"gmqtt": gmqtt_clients, "aiomqtt": aiomqtt_clients, "amqtt": amqtt_clients}


def cpu_s() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def child(lib: str, host: str, port: int, n: int) -> dict[str, Any]:
    b = Bench(n)
    connect, subscribed, close = await FACTORIES[lib](b, host, port)
    import gmqtt

    pub = gmqtt.Client("bench-publisher")  # the same publisher for every library, connected before the baseline
    await pub.connect(host, port)
    proc = psutil.Process()
    gc.collect()
    rss0, cpu0, t0 = proc.memory_info().rss, cpu_s(), time.perf_counter()
    failed = 0
    for lo in range(0, n, BATCH):
        done = await asyncio.wait_for(asyncio.gather(*(connect(i) for i in range(lo, min(n, lo + BATCH))),
                                                     return_exceptions=True), DEADLINE_S)
        failed += sum(isinstance(d, BaseException) for d in done)
    await asyncio.wait_for(subscribed(), DEADLINE_S)
    t_conn = time.perf_counter()
    pub.publish("bench/all", b'{"objectType":"EVENT","operation":"CREATE"}', qos=0)
    try:
        await asyncio.wait_for(b.all.wait(), DEADLINE_S)
    except TimeoutError:
        pass
    t_rx = time.perf_counter()
    cpu1 = cpu_s()
    gc.collect()
    rss1 = proc.memory_info().rss
    await pub.disconnect()
    await close()
    return {"lib": lib, "connections": n, "failed": failed, "received": b.got,
            "rss_kib_per_conn": (rss1 - rss0) / 1024 / n, "cpu_ms_per_conn": (cpu1 - cpu0) * 1000 / n,
            "connect_subscribe_s": t_conn - t0, "receive_s": t_rx - t_conn, "rss_mib": rss1 / 2**20}


# ---- the parent: one broker, one child per library ---------------------------------------------------------
def version(lib: str) -> str:
    from importlib.metadata import version as v

    return v({"aiomqtt": "aiomqtt", "gmqtt": "gmqtt", "amqtt": "amqtt"}[lib])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--connections", type=int, default=10_000)
    ap.add_argument("--libs", default=",".join(LIBS))
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args()
    hard = raise_nofile()
    if args.connections + 100 > hard:
        sys.exit(f"--connections {args.connections} needs more open files than the hard limit {hard} (ulimit -Hn)")
    if args.child:
        print(json.dumps(uvloop.run(child(args.child, "127.0.0.1", args.port, args.connections))))
        return
    from harness.vtn import Broker

    rows = []
    for lib in args.libs.split(","):
        with Broker(kind="mosquitto") as broker:  # a fresh broker per library: no leftover sessions
            port = int(broker.url.rsplit(":", 1)[1])
            out = subprocess.run([sys.executable, __file__, "--child", lib, "--port", str(port),
                                  "--connections", str(args.connections)], capture_output=True, text=True,
                                 timeout=DEADLINE_S * 3)
            broker_cpu = sum(psutil.Process(broker.pid).cpu_times()[:2])
        if out.returncode != 0:
            print(f"{lib}: failed: {out.stderr.strip().splitlines()[-1] if out.stderr.strip() else out.returncode}")
            continue
        row = json.loads(out.stdout.strip().splitlines()[-1])
        row["broker_cpu_s"] = broker_cpu
        rows.append(row)
        print(json.dumps(row), flush=True)
    print(f"\n| library | connections | failed | received | RSS KiB/conn | CPU ms/conn | connect+subscribe s | receive s | broker CPU s |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for r in rows:
        print(f"| {r['lib']} {version(r['lib'])} | {r['connections']} | {r['failed']} | {r['received']} | "
              f"{r['rss_kib_per_conn']:.1f} | {r['cpu_ms_per_conn']:.2f} | {r['connect_subscribe_s']:.1f} | "
              f"{r['receive_s']:.2f} | {r['broker_cpu_s']:.1f} |")


if __name__ == "__main__":
    main()
