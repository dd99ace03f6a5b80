"""Shards on a Dask cluster (a 2-worker LocalCluster on loopback): same totals as local, losses reported, clean stop."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import psutil
import pytest
from distributed import Client  # the test extra holds dask[distributed]: missing, collection fails (never a skip)

from harness.core.profile import Profile
from harness.run import cluster as cluster_mod
from harness.run.backend import LocalBackend
from harness.run.cluster import CHILD_FLAG, ClusterError, DaskBackend, start_local_cluster
from harness.run.session import RunSession


def until(predicate: Callable[[], bool], timeout_s: float = 20.0) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(0.05)
    return predicate()


def shard_children(run_id: str) -> list[psutil.Process]:
    """Live shard processes of one run, wherever they were re-parented (found by the marker in their argv)."""
    out = []
    for p in psutil.process_iter(["cmdline", "status"]):
        cmd = p.info["cmdline"] or []
        if CHILD_FLAG in cmd and any(a.startswith(run_id) for a in cmd) and p.info["status"] != psutil.STATUS_ZOMBIE:
            out.append(p)
    return out


def run_killing(sup: RunSession, killer: Callable[[], None], killed: list[Any]) -> tuple[Any, dict[int, Any]]:
    """Run the session while `killer` (on its own thread) kills one shard once reports flow: the outcome, invalid
    (exit 3), and its workers by id."""
    thread = threading.Thread(target=killer, name="test-killer")
    thread.start()
    outcome = sup.run()
    thread.join(5)
    assert killed, "the run never started reporting"
    assert (outcome.exit_code, outcome.verdict) == (3, "invalid")
    return outcome, {w["worker"]: w for w in outcome.summary["workers"]}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    c = start_local_cluster(2)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def client(cluster: Any) -> Iterator[Client]:
    with Client(cluster, set_as_default=False) as c:
        yield c


@pytest.fixture
def two_workers(client: Client) -> Client:
    client.wait_for_workers(2, timeout=30)  # a test that kills a worker leaves the nanny restarting it
    return client


def test_cluster_totals_equal_a_local_run(cluster: Any, two_workers: Client, tmp_path: Path) -> None:
    """The same seed and fleet on a 2-worker LocalCluster and on 2 local processes: identical exact totals."""
    p = Profile(name="same", vens=40, interval_s=0.5, reports_per_ven=2, workers=2, seed=5)
    local = RunSession(p, tmp_path / "local", backend=LocalBackend()).run()
    backend = DaskBackend(cluster.scheduler_address)
    dask = RunSession(p, tmp_path / "dask", backend=backend).run()
    for outcome in (local, dask):
        assert (outcome.exit_code, outcome.verdict) == (0, "pass"), outcome.summary.get("reasons")
        assert outcome.summary["errors"] == {}
        assert [w["status"] for w in outcome.summary["workers"]] == ["done", "done"]
    ops = {name: (o["ok"], o["errors"]) for name, o in local.summary["operations"].items()}
    assert ops == {name: (o["ok"], o["errors"]) for name, o in dask.summary["operations"].items()}
    assert ops["report"] == (80, 0) and ops["create_ven"] == (40, 0)
    assert sorted(set(backend.pinned().values())) == sorted(two_workers.nthreads())  # one shard per worker


def test_killed_dask_worker_is_reported_with_its_vens(cluster: Any, two_workers: Client, tmp_path: Path) -> None:
    """os._exit in one Dask worker mid-run: that shard is lost with its VEN range, never re-run; verdict invalid."""
    p = Profile(name="kill", vens=20, interval_s=0.5, reports_per_ven=6, workers=2, seed=3)
    backend = DaskBackend(cluster.scheduler_address)
    sup = RunSession(p, tmp_path, backend=backend)
    killed: list[str] = []

    def reporting() -> bool:
        try:
            return sup.results.ok("report") > 0 and 0 in backend.pinned()
        except RuntimeError:  # the supervisor is merging into the dict right now
            return False

    def killer() -> None:
        if until(reporting, 30.0):
            addr = backend.pinned()[0]
            killed.append(addr)
            (pid,) = two_workers.run(os.getpid, workers=[addr]).values()
            os.kill(pid, signal.SIGKILL)  # as the OOM killer would

    outcome, workers = run_killing(sup, killer, killed)
    assert workers[0]["status"] == "lost" and workers[1]["status"] == "done"
    assert "VENs 0..9 (10 VENs)" in workers[0]["detail"] and killed[0] in workers[0]["detail"]
    assert "not re-run" in workers[0]["detail"] or "left the cluster" in workers[0]["detail"]
    assert outcome.summary["operations"]["report"]["ok"] >= 60  # the other shard finished: 10 VENs x 6
    assert until(lambda: not shard_children(backend.run_id), 10.0)  # the orphaned shard saw EOF and exited


def test_killed_shard_process_is_reported_with_its_vens(cluster: Any, two_workers: Client, tmp_path: Path) -> None:
    """SIGKILL of one shard's process on its Dask worker: its task fails, the shard is lost with its VEN range."""
    p = Profile(name="kill-child", vens=20, interval_s=0.5, reports_per_ven=6, workers=2, seed=6)
    backend = DaskBackend(cluster.scheduler_address)
    sup = RunSession(p, tmp_path, backend=backend)
    killed: list[int] = []

    def killer() -> None:
        def reporting() -> bool:
            try:
                return sup.results.ok("report") > 0 and sup.results.workers[1].pid > 0
            except (RuntimeError, KeyError):
                return False

        if until(reporting, 30.0):
            killed.append(sup.results.workers[1].pid)
            os.kill(killed[0], signal.SIGKILL)

    outcome, workers = run_killing(sup, killer, killed)
    assert workers[0]["status"] == "done" and workers[1]["status"] == "lost"
    assert "VENs 10..19 (10 VENs)" in workers[1]["detail"] and f"{killed[0]} exited with code -9" in workers[1]["detail"]
    assert all(not keys for keys in two_workers.processing().values())


def test_sigint_stops_every_shard_and_leaves_nothing_running(cluster: Any, two_workers: Client, tmp_path: Path) -> None:
    """Ctrl-C mid-run: every shard drains and ends cooperatively; no task processing, no shard process left."""
    p = Profile(name="stop", vens=20, interval_s=0.5, reports_per_ven=200, workers=2, seed=4)
    backend = DaskBackend(cluster.scheduler_address)
    sup = RunSession(p, tmp_path, backend=backend)
    seen: dict[str, Any] = {}

    def interrupter() -> None:
        def running() -> bool:
            try:
                return sup.results.ok("report") > 0
            except RuntimeError:
                return False

        if until(running, 30.0):
            seen["children"] = len(shard_children(backend.run_id))
            os.kill(os.getpid(), signal.SIGINT)  # the supervisor's handler records it, as for Ctrl-C

    thread = threading.Thread(target=interrupter, name="test-interrupter")
    thread.start()
    started = time.monotonic()
    outcome = sup.run()
    thread.join(5)
    assert seen.get("children") == 2
    assert (outcome.exit_code, outcome.verdict) == (130, "interrupted")
    assert time.monotonic() - started < 30
    assert [w["status"] for w in outcome.summary["workers"]] == ["done", "done"]  # drained, not lost
    assert all(how.endswith("returned") for how in backend.exited().values()) and len(backend.exited()) == 2
    assert all(not keys for keys in two_workers.processing().values())
    assert shard_children(backend.run_id) == []
    for pid in two_workers.run(os.getpid).values():
        assert psutil.Process(pid).children(recursive=True) == []


def test_local_n_starts_and_closes_its_own_cluster() -> None:
    """--cluster local:1 starts a LocalCluster on loopback and close() leaves none of its processes running."""
    backend = DaskBackend("local:1")
    try:
        assert backend.default_workers() == 1
        pids = list(backend.client.run(os.getpid).values())
        assert backend.client.scheduler.address.startswith("tcp://127.0.0.1:")
    finally:
        backend.close()
    assert pids and until(lambda: not any(psutil.pid_exists(p) and psutil.Process(p).status() != psutil.STATUS_ZOMBIE
                                          for p in pids), 10.0)


def test_unreachable_scheduler_is_one_line_exit_4() -> None:
    """A scheduler that does not answer is a ClusterError naming the address, mapped to exit code 4."""
    with pytest.raises(ClusterError) as err:
        DaskBackend("tcp://127.0.0.1:9", connect_timeout_s=1.0).connect()
    assert err.value.exit_code == 4
    assert "tcp://127.0.0.1:9" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.parametrize("address", ["nonsense", "local:0", "local:x", "http://127.0.0.1:8786"])
def test_malformed_address_is_a_usage_error(address: str) -> None:
    """--cluster takes a scheduler address or local:N; anything else is exit 2 before anything starts."""
    with pytest.raises(ClusterError) as err:
        DaskBackend(address)
    assert err.value.exit_code == 2 and "--cluster" in str(err.value)


def test_remote_workers_cannot_use_a_loopback_target() -> None:
    """Shards on other machines cannot reach a VTN on this machine's loopback: a usage error, not lost shards."""
    from harness.run.cluster import _check_reachable_target
    from tests.run.test_worker import spec

    local = spec(target="http://127.0.0.1:8080/openadr3/3.0.1")
    _check_reachable_target([local], ["tcp://127.0.0.1:4000"])
    _check_reachable_target([spec(target="http://10.0.0.9:8080/x")], ["tcp://10.0.0.5:4000"])
    with pytest.raises(ClusterError, match="cannot reach the target"):
        _check_reachable_target([local], ["tcp://10.0.0.5:4000"])


def test_cli_without_dask_names_the_extra(tmp_path: Path) -> None:
    """Without Dask installed, `harness run --cluster` is one line naming pip install 'harness[cluster]', exit 2."""
    code = ("import sys; sys.modules['distributed'] = None; from harness.cli import main; "
            "sys.argv = ['harness', 'run', '--cluster', 'local:2', '--vens', '4']; main()")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"harness: error: --cluster needs Dask, which is not installed: {cluster_mod.INSTALL_HINT}"
    assert not (tmp_path / "runs").exists()


def test_cli_runs_on_a_local_cluster(tmp_path: Path) -> None:
    """`harness run --cluster local:2` counts exactly as a local run does and exits 0."""
    import json

    r = subprocess.run(
        [sys.executable, "-m", "harness", "run", "--cluster", "local:2", "--vens", "10", "--interval", "300ms",
         "--reports-per-ven", "2", "--quiet"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (summary,) = tmp_path.glob("runs/*/summary.json")
    doc = json.loads(summary.read_text())
    assert doc["operations"]["report"]["ok"] == 20 and doc["errors"] == {}
    assert len(doc["workers"]) == 2  # the default: one shard per worker of the cluster


def test_web_dashboard_works_the_same_on_a_cluster(tmp_path: Path) -> None:
    """`harness run --cluster local:2 --web 127.0.0.1:0`: the dashboard's snapshot (what the page draws; the page
    itself is read in Chromium by tests/sinks/test_web.py) grows while the shards run on Dask workers, shows both
    shards, and ends with the run's exact total."""
    import json
    import re
    import urllib.request

    proc = subprocess.Popen(
        [sys.executable, "-m", "harness", "run", "--cluster", "local:2", "--vens", "20", "--interval", "1s",
         "--reports-per-ven", "10", "--quiet", "--web", "127.0.0.1:0", "--out", str(tmp_path)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    seen: list[int] = []
    try:
        assert proc.stderr is not None
        m = re.fullmatch(r"harness: web dashboard: (http://127\.0\.0\.1:\d+/)\n", proc.stderr.readline())
        assert m is not None
        deadline, snap, failed = time.monotonic() + 90, {}, []
        while time.monotonic() < deadline and proc.poll() is None and (len(set(seen)) < 2 or not seen[-1]):
            try:
                with urllib.request.urlopen(m.group(1) + "api/snapshot", timeout=5) as r:
                    snap = json.loads(r.read())
                if snap.get("phase") == "running" and snap.get("reports_ok"):
                    seen.append(snap["reports_ok"])
            except OSError as exc:  # a slow answer on a loaded box (asked again), or the run ended (the loop ends)
                failed.append(repr(exc))
            time.sleep(0.3)  # a poll interval, not a synchronisation: the loop waits on the values it reads
        # The count grew while the run went on.
        assert len(set(seen)) >= 2 and seen == sorted(seen), (seen, snap.get("phase"), failed[-3:], proc.poll())
        assert {w["worker"] for w in snap["workers"]} == {0, 1}
        out, err = proc.communicate(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, err[-2000:]
    (summary,) = tmp_path.glob("runs/*/summary.json")
    assert json.loads(summary.read_text())["operations"]["report"]["ok"] == 200
