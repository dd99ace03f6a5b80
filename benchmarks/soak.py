"""Soak: a long steady `harness run` against the embedded VTN; RSS and open-fd slopes per process.

Run: python benchmarks/soak.py [--minutes 10] [--vens 500] [--interval 5s] [--workers 2]
Samples the supervisor, every worker and the embedded VTN (benchmarks/proctree.py's sampling) and prints,
per process, the RSS and fd slope per minute over the second half of the steady run (the final drain and
close left out), then PASS/FAIL against the bounds (default: RSS < 1 MiB/min, fds < 1/min).
Exit 0 on PASS, 1 on FAIL. A benchmark, not a test.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from proctree import label, run_sampled, slope_per_min  # noqa: E402


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--vens", type=int, default=500)
    ap.add_argument("--interval", default="5s", help="report interval per VEN")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--sample", type=float, default=1.0, help="seconds between samples")
    ap.add_argument("--rss-bound", type=float, default=1.0, help="MiB/min, per process")
    ap.add_argument("--fd-bound", type=float, default=1.0, help="fds/min, per process")
    ap.add_argument("--out", help="results folder parent [default: a temporary folder]")
    ap.add_argument("--teardown", type=float, default=20.0,
                    help="seconds at the end left out of the slopes (drain and close are not steady state)")
    a = ap.parse_args()
    out = Path(a.out or tempfile.mkdtemp(prefix="harness-soak-"))
    cmd = [sys.executable, "-m", "harness", "run", "--vens", str(a.vens), "--interval", a.interval,
           "--duration", f"{a.minutes * 60:g}s", "--workers", str(a.workers), "--quiet", "--max-loop-lag", "5s",
           "--name", "soak", "--out", str(out)]
    print(" ".join(cmd[1:]), flush=True)
    code, wall, tracks = run_sampled(cmd, a.sample)
    run_dirs = sorted(out.glob("runs/*/summary.json"))
    doc = label(tracks, run_dirs[-1]) if run_dirs else {}
    rep = doc.get("operations", {}).get("report", {}) if isinstance(doc.get("operations"), dict) else {}
    print(f"exit code {code}, wall {wall:.0f}s, verdict {doc.get('verdict')}, reports ok {rep.get('ok')} "
          f"errors {rep.get('errors')} due {rep.get('due')}, folder {out}")
    failed = []
    for tr in sorted(tracks.values(), key=lambda t: t.pid):
        if tr.role == "mp resource tracker" or sum(t <= wall - a.teardown for t in tr.t) < 8:
            continue
        steady = [i for i, t in enumerate(tr.t) if t <= wall - a.teardown]  # slope_per_min takes their second half
        t, rss, fds = [tr.t[i] for i in steady], [tr.rss[i] for i in steady], [tr.fds[i] for i in steady]
        rss_slope = slope_per_min(t, rss) / 2**20
        fd_slope = slope_per_min(t, fds)
        ok = rss_slope < a.rss_bound and fd_slope < a.fd_bound
        if not ok:
            failed.append(tr.role)
        half = len(t) // 2
        print(f"{'PASS' if ok else 'FAIL'} pid {tr.pid:7d} {tr.role:24s} RSS {rss[half] / 2**20:7.1f} -> "
              f"{rss[-1] / 2**20:7.1f} MiB, slope {rss_slope:+.3f} MiB/min; fds {fds[half]} -> {fds[-1]}, "
              f"slope {fd_slope:+.3f}/min; {len(t) - half} samples ({t[half]:.0f}..{t[-1]:.0f}s)")
    verdict = "PASS" if not failed and code == 0 else "FAIL"
    print(f"{verdict}: bounds RSS < {a.rss_bound:g} MiB/min, fds < {a.fd_bound:g}/min per process over the second half"
          + (f"; over: {', '.join(failed)}" if failed else ""))
    return 0 if verdict == "PASS" else 1


if __name__ == "__main__":
    sys.exit(main())
