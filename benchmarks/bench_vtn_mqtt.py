"""MQTT fan-out of the embedded 3.1.0 VTN: one event to N VENs, each on its own VEN-specific topic.

A benchmark, not a test. It starts Mosquitto (or amqtt) and an EmbeddedVtn child publishing to it, creates N ven
records, subscribes one wildcard client to `vens/+/events/create`, creates one untargeted event and reports how
long until the VTN had every message acknowledged by the broker and until the subscriber had them all:
    python benchmarks/bench_vtn_mqtt.py --vens 25000 [--qos 1] [--broker mosquitto|amqtt]
"""

from __future__ import annotations

import argparse
import asyncio
import tempfile
import time
from pathlib import Path

import aiohttp
import gmqtt  # type: ignore[import-untyped]
import psutil  # type: ignore[import-untyped]
import uvloop
from gmqtt.mqtt.constants import MQTTv311  # type: ignore[import-untyped]

from harness.vtn import Broker, EmbeddedVtn, VtnConfig


async def fan_out(base: str, root: str, broker_url: str, vens: int) -> dict[str, float]:
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=64)) as s:
        async def token(cid: str) -> str:
            form = {"grant_type": "client_credentials", "client_id": cid, "client_secret": "bl-secret" if cid == "bl" else "ven-secret"}
            async with s.post(base + "/auth/token", data=form) as r:
                return str((await r.json())["access_token"])

        bl = await token("bl")
        ven = await token("ven-bench")
        sem = asyncio.Semaphore(64)

        async def create(i: int) -> None:
            async with sem, s.post(base + "/vens", json={"objectType": "VEN_VEN_REQUEST", "venName": f"v{i}"},
                                   headers={"Authorization": f"Bearer {ven}"}) as r:
                assert r.status == 201, await r.text()

        t = time.perf_counter()
        await asyncio.gather(*(create(i) for i in range(vens)))
        print(f"{vens} ven records created in {time.perf_counter() - t:.1f}s")
        hdr = {"Authorization": f"Bearer {bl}"}
        async with s.post(base + "/programs", json={"programName": "bench"}, headers=hdr) as r:
            pid = (await r.json())["id"]

        async def stats() -> dict[str, int]:
            async with s.get(root + "/_harness/stats") as r:
                return dict((await r.json())["mqtt"])

        while (m := await stats())["inflight"] or m["queued"] or m["batches"]:  # the program's own fan-out settles first
            await asyncio.sleep(0.05)
        start_count = m["published"]

        got = 0
        done = asyncio.Event()
        sub = gmqtt.Client("bench-sub")

        def on_message(*_: object) -> int:
            nonlocal got
            got += 1
            if got == vens:
                done.set()
            return 0

        sub.on_message = on_message
        host, port = broker_url.removeprefix("mqtt://").rsplit(":", 1)
        await sub.connect(host, int(port), version=MQTTv311)
        sub.subscribe("vens/+/events/create", qos=1)
        await asyncio.sleep(0.5)  # SUBACK: a benchmark may wait; tests never do
        event = {"programID": pid, "eventName": "all", "intervals": [{"id": 0, "payloads": [{"type": "SIMPLE", "values": [1]}]}]}
        t0 = time.perf_counter()
        async with s.post(base + "/events", json=event, headers=hdr) as r:
            assert r.status == 201
        t_ack = time.perf_counter()
        while True:
            m = await stats()
            if m["published"] - start_count >= vens + 2 and m["inflight"] == 0 and m["queued"] == 0 and m["batches"] == 0:
                break
            await asyncio.sleep(0.01)
        t_pub = time.perf_counter()
        await asyncio.wait_for(done.wait(), 120)
        t_rx = time.perf_counter()
        await sub.disconnect()
        return {"post_s": t_ack - t0, "published_and_acked_s": t_pub - t0, "received_s": t_rx - t0}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--vens", type=int, default=25_000)
    ap.add_argument("--qos", type=int, default=1, choices=(0, 1))
    ap.add_argument("--broker", default="auto", choices=("auto", "mosquitto", "amqtt"))
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp, Broker(kind=args.broker) as broker:
        config = VtnConfig(db_path=str(Path(tmp) / "vtn.sqlite"), mqtt_url=broker.url, mqtt_qos=args.qos)
        with EmbeddedVtn(config) as vtn:
            root = vtn.url.removesuffix(config.base_path)
            vtn_proc, broker_proc = psutil.Process(vtn.pid), psutil.Process(broker.pid)
            result = uvloop.run(fan_out(root + str(config.base_path_31), root, broker.url, args.vens))
            print(f"{broker.kind}, QoS {args.qos}, {args.vens} VENs: " + ", ".join(f"{k} {v:.3f}" for k, v in result.items()))
            print(f"VTN RSS {vtn_proc.memory_info().rss / 2**20:.0f} MiB, broker RSS {broker_proc.memory_info().rss / 2**20:.0f} MiB, "
                  f"broker CPU {sum(broker_proc.cpu_times()[:2]):.2f}s")


if __name__ == "__main__":
    main()
