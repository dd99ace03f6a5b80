"""Run a command and sample its whole process tree: peak RSS per process, and RSS / open-fd slopes.

Run: python benchmarks/proctree.py [--interval 0.5] -- harness run --vens 1000 --duration 60s
Prints one line per process (pid, role from its command line, peak RSS, RSS and fd slope per minute over
the second half of its life) and the wall time. Used for the issue figures and the soak benchmark.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import psutil


@dataclass
class Track:
    pid: int
    role: str
    t: list[float] = field(default_factory=list)
    rss: list[int] = field(default_factory=list)
    fds: list[int] = field(default_factory=list)
    cpu: list[float] = field(default_factory=list)  # user + system CPU seconds so far


def role(p: psutil.Process) -> str:
    try:
        cmd = " ".join(p.cmdline())
        name = p.name()
    except psutil.Error:
        return "?"
    if "resource_tracker" in cmd:
        return "mp resource tracker"
    if "multiprocessing" in cmd or "spawn_main" in cmd:
        return f"child ({name})"
    return "supervisor" if "harness" in cmd else name


def slope_per_min(t: list[float], y: list[int]) -> float:
    if len(t) < 4:
        return float("nan")
    h = len(t) // 2
    tt, yy = np.asarray(t[h:]), np.asarray(y[h:], dtype=float)
    if tt[-1] - tt[0] <= 0:
        return float("nan")
    return float(np.polyfit(tt, yy, 1)[0] * 60)


def label(tracks: dict[int, Track], summary_path: Path) -> dict[str, Any]:
    """Name the children from a run's summary.json (workers by pid, the embedded VTN); the summary."""
    doc: dict[str, Any] = json.loads(summary_path.read_text())
    names = {w["pid"]: f"worker {w['worker']} ({w['vens']} VENs)" for w in doc.get("workers", [])}
    if doc.get("run", {}).get("vtn_pid"):
        names[doc["run"]["vtn_pid"]] = "embedded VTN"
    for tr in tracks.values():
        tr.role = names.get(tr.pid, tr.role)
    return doc


def label_from_summary(tracks: dict[int, Track], where: Path = Path(".")) -> None:
    """Label from the newest summary.json under where/runs/ and print its report figures."""
    found = sorted(where.glob("runs/*/summary.json"), key=lambda p: p.stat().st_mtime)
    if not found:
        return
    doc = label(tracks, found[-1])
    r = doc.get("operations", {}).get("report", {})
    print(f"reports ok {r.get('ok')} errors {r.get('errors')} due {r.get('due')} achieved {r.get('achieved_fraction')} "
          f"rate {r.get('rate_per_s')}/s target {doc.get('run', {}).get('target_report_rate_per_s')}/s verdict {doc.get('verdict')}")


def run_sampled(cmd: list[str], interval_s: float) -> tuple[int, float, dict[int, Track]]:
    """Run cmd; sample RSS, fds and CPU of its whole process tree every interval_s; (exit code, wall s, tracks)."""
    start = time.monotonic()
    proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL)
    root = psutil.Process(proc.pid)
    tracks: dict[int, Track] = {}
    while proc.poll() is None:
        now = time.monotonic() - start
        try:
            procs = [root, *root.children(recursive=True)]
        except psutil.Error:
            break
        for p in procs:
            try:
                mem = p.memory_info().rss
                fds = p.num_fds()
                ct = p.cpu_times()
            except psutil.Error:
                continue
            tr = tracks.get(p.pid)
            if tr is None:
                tr = tracks[p.pid] = Track(p.pid, "supervisor" if p.pid == proc.pid else role(p))
            tr.t.append(now)
            tr.rss.append(mem)
            tr.fds.append(fds)
            tr.cpu.append(ct.user + ct.system)
        time.sleep(interval_s)
    return proc.returncode or 0, time.monotonic() - start, tracks


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--interval", type=float, default=0.5)
    ap.add_argument("cmd", nargs=argparse.REMAINDER)
    a = ap.parse_args()
    cmd = a.cmd[1:] if a.cmd[:1] == ["--"] else a.cmd
    code, wall, tracks = run_sampled(cmd, a.interval)
    print(f"exit code {code}, wall {wall:.1f}s")
    label_from_summary(tracks)
    for tr in sorted(tracks.values(), key=lambda t: t.pid):
        print(
            f"pid {tr.pid:7d} {tr.role:28s} peak RSS {max(tr.rss) / 2**20:8.1f} MiB  fds max {max(tr.fds):6d}  "
            f"RSS slope {slope_per_min(tr.t, tr.rss) / 2**20:+.2f} MiB/min  fd slope {slope_per_min(tr.t, tr.fds):+.2f}/min  "
            f"CPU {tr.cpu[-1]:6.2f} s ({100 * (tr.cpu[-1] - tr.cpu[0]) / max(1e-9, tr.t[-1] - tr.t[0]):5.1f} % while sampled)  "
            f"samples {len(tr.t)}"
        )
    return code


if __name__ == "__main__":
    sys.exit(main())
