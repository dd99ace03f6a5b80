"""How long the report lane's requests wait in the outbox (harness/net/outbox.py) before they are written.

Run: python benchmarks/outbox_wait.py
One worker in this process, 6,000 VENs against the null VTN, per-VEN and pooled, at saturation (every 0.1 s:
60,000 reports/s offered) and at 8,000/s (every 0.75 s); the wait of every write after the first third of the run.
The wait counts in service_time (docs/measurement.md); this says how much of it is the client's.
"""
import asyncio, multiprocessing as mp, sys, time
import numpy as np, uvloop
from harness.core.fleet import FleetSpec
from harness.core.messages import Start
from harness.core.shard import Credentials, ShardSpec
from harness.net import outbox as ob
from harness.run.worker import Worker
from harness.vtn import EmbeddedVtn, VtnConfig

waits = []
orig_add, orig_flush = ob.Outbox.add, ob.Outbox._flush
def add(self, flight, conn):
    flight._t = time.monotonic()
    orig_add(self, flight, conn)
def flush(self):
    now = time.monotonic()
    waits.extend(now - f._t for f, _ in self._queued)
    orig_flush(self)
ob.Outbox.add, ob.Outbox._flush = add, flush
import harness.run.reportlane as rl


class TimedFlight(rl.ReportFlight):  # a slot for the instant it joined the outbox
    __slots__ = ("_t",)


rl.ReportFlight = TimedFlight  # type: ignore[misc]

class Sink:
    def put(self, item): pass

def main(url, mode, interval):
    spec = ShardSpec(worker_id=0, fleet=FleetSpec(vens=6000), ven_start=0, ven_stop=6000, seed=1, target=url, program_id="1",
                     event_id="2", interval_s=interval, duration_s=8.0, reports_per_ven=None, connection=mode,
                     pool_size=64, timeout_s=10.0, credentials=Credentials())
    recv, send = mp.Pipe(duplex=False)
    send.send(Start(time.time() + 0.2))
    w = Worker(spec, recv, Sink())
    waits.clear()
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(w.run())
    a = np.array(waits[len(waits)//3:]) * 1e3
    print(f"{mode:8s} interval {interval:5.2f}s: {len(a):7d} writes, wait ms p50 {np.percentile(a,50):.3f} p99 {np.percentile(a,99):.3f} max {a.max():.3f}")

if __name__ == "__main__":
    with EmbeddedVtn(VtnConfig(null=True)) as vtn:
        for mode in ("per-ven", "pooled"):
            for interval in (0.1, 0.75):
                main(vtn.url, mode, interval)
