"""Reliability under faults: a target that dies, resets, errs, stalls, throttles or never accepts; hung workers;
signals; unusable output folders; secrets. Real processes and sockets; exact classes, counts and exit codes."""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil
import pytest

from harness.core.errors import Failure
from harness.core.messages import WorkerDelta
from harness.core.profile import Profile
from harness.dialects import Request
from harness.net.aiotransport import AiohttpTransport
from harness.run.backend import LocalBackend
from harness.core.exits import EXIT_FAIL, EXIT_INVALID, EXIT_PASS
from harness.run.session import RunSession
from harness.vtn import EmbeddedVtn, VtnConfig, parse_faults

# ---- helpers ------------------------------------------------------------------------------------------


@pytest.fixture(autouse=True)
def _secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    """A --target needs its secrets from the environment: the embedded VTN's defaults."""
    monkeypatch.setenv("HARNESS_BL_SECRET", "bl-secret")
    monkeypatch.setenv("HARNESS_VEN_SECRET", "ven-secret")


def control(vtn_or_port: EmbeddedVtn | int, path: str, body: dict[str, Any] | None = None) -> Any:
    """GET (or POST a JSON body to) one of the VTN's /_harness/ control endpoints."""
    port = vtn_or_port if isinstance(vtn_or_port, int) else vtn_or_port.port
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(f"http://127.0.0.1:{port}/_harness/{path}", data=data,
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as r:
        return json.loads(r.read())


def assert_no_processes_left(timeout_s: float = 10.0) -> None:
    """Every child of this test process has exited (multiprocessing's resource tracker lives on by design)."""
    kids = [p for p in psutil.Process().children(recursive=True) if not _is_resource_tracker(p)]
    _, alive = psutil.wait_procs(kids, timeout=timeout_s)
    assert alive == [], [(p.pid, _cmd(p)) for p in alive]


def _is_resource_tracker(p: psutil.Process) -> bool:
    return "resource_tracker" in _cmd(p)


def _cmd(p: psutil.Process) -> str:
    try:
        return " ".join(p.cmdline())
    except psutil.Error:
        return "?"


def report_accounting(doc: dict[str, Any]) -> tuple[int, int, int]:
    rep = doc["operations"]["report"]
    return rep["ok"], rep["errors"], rep["due"]


class OnFirstReports(LocalBackend):
    """Calls `action` once, from the supervisor's loop, on the first delta that carries successful reports."""

    def __init__(self, action: Callable[[], None]) -> None:
        super().__init__()
        self.action = action
        self.fired_at: float | None = None

    def get(self, timeout_s: float) -> Any:
        msg = super().get(timeout_s)
        if (self.fired_at is None and isinstance(msg, WorkerDelta) and "report" in msg.ops
                and msg.ops["report"].ok > 0):
            self.fired_at = time.time()
            self.action()
        return msg


def _profile(name: str, target: str, **kw: Any) -> Profile:
    base: dict[str, Any] = dict(name=name, target=target, vens=20, interval_s=0.5, reports_per_ven=6, workers=1,
                                seed=5, max_loop_lag_ms=5000, timeout_s=2.0, drain_s=2.0)
    return Profile(**{**base, **kw})


# ---- target faults ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("thresholds", "code", "verdict"), [((), EXIT_FAIL, "fail"),
                                                              (("errors.rate < 1%",), EXIT_FAIL, "fail")])
def test_target_dying_mid_run_is_connect_refused_and_the_run_reports(
        tmp_path: Path, thresholds: tuple[str, ...], code: int, verdict: str) -> None:
    """The VTN stops after reports flow: the rest are connect_refused, the run ends with its summary, counts add up."""
    vtn = EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))).start()
    try:
        backend = OnFirstReports(lambda: vtn.stop())
        p = _profile("dying", vtn.url, thresholds=thresholds)
        outcome = RunSession(p, tmp_path, backend=backend).run()
    finally:
        vtn.stop()
    doc = outcome.summary
    assert (outcome.exit_code, outcome.verdict) == (code, verdict)
    # No thresholds named: the default gates judge the run, and the reason names the one that failed.
    gate = "default gate" if not thresholds else "threshold"
    assert doc["reasons"][0].startswith(f"{gate} failed: errors.rate <")
    assert doc["thresholds_source"] == ("default" if not thresholds else "profile")
    assert set(doc["errors"]) == {"connect_refused"}
    ok, errs, due = report_accounting(doc)
    assert due == 20 * 6 and ok + errs == due and ok > 0 and errs > 0
    assert doc["errors"]["connect_refused"]["count"] == errs
    assert doc["workers"][0]["status"] == "done"
    stored = sqlite3.connect(tmp_path / "vtn.sqlite").execute("SELECT count(*) FROM reports").fetchone()[0]
    assert stored == ok
    assert json.loads((outcome.run_dir / "summary.json").read_text())["verdict"] == verdict
    assert_no_processes_left()


@pytest.mark.parametrize(("faults", "error_class"), [({"reset_rate": "0.1", "seed": 7}, "reset"),
                                                     ({"errors": "503:0.1", "seed": 7}, "http_503")])
def test_injected_resets_and_503s_are_counted_exactly(tmp_path: Path, faults: dict[str, Any], error_class: str) -> None:
    """Resets and 503s drawn from a seeded VTN: the harness counts exactly what the VTN injected, by class."""
    with EmbeddedVtn(VtnConfig(faults=parse_faults(faults))) as vtn:
        outcome = RunSession(_profile("faulty", vtn.url, workers=2), tmp_path).run()
        stats = control(vtn, "stats")
    doc = outcome.summary
    injected = stats["faults"]["resets"] if error_class == "reset" else stats["faults"]["injected"]["503"]
    assert injected > 0
    # Every injected fault is counted once: by a VEN operation, as a retry on a fresh connection after a kept-alive
    # one was reset, or by the operator's setup calls.
    counters = doc["counters"]
    assert (doc["errors"][error_class]["count"] + counters.get("stale_connection_retries", 0)
            + counters.get("setup_transient_failures", 0)) == injected
    # A VEN whose provisioning failed misses the reports due meanwhile (not_ready) and provisions again.
    assert set(doc["errors"]) <= {error_class, "not_ready"}
    ok, errs, due = report_accounting(doc)
    assert due == 20 * 6 and ok + errs == due
    assert stats["reports_stored"] == ok
    # ~10 % of operations failed and no thresholds were named: the default errors gate fails the run.
    assert (outcome.exit_code, outcome.verdict) == (EXIT_FAIL, "fail")
    assert any(r.startswith("default gate failed: errors.rate <= 1% (") for r in doc["reasons"]), doc["reasons"]
    assert_no_processes_left()


def test_stall_beyond_the_timeout_is_read_timeout(tmp_path: Path) -> None:
    """A 2 s stall with a 0.5 s timeout: the stalled reports are read_timeout; the VTN stored them all the same."""
    with EmbeddedVtn(VtnConfig()) as vtn:
        backend = OnFirstReports(lambda: control(vtn, "stall", {"duration_s": 2.0}))
        outcome = RunSession(_profile("stall", vtn.url, timeout_s=0.5, reports_per_ven=8), tmp_path,
                             backend=backend).run()
        stats = control(vtn, "stats")
    doc = outcome.summary
    assert set(doc["errors"]) == {"read_timeout"}
    ok, errs, due = report_accounting(doc)
    assert due == 20 * 8 and ok + errs == due and errs > 0
    assert doc["errors"]["read_timeout"]["count"] == errs
    # Timed-out reports were stored before the hold: the VTN has every report, the harness knows which it saw.
    assert stats["reports_stored"] == ok + errs
    assert stats["faults"]["stalled_responses"] >= errs
    assert outcome.exit_code == EXIT_FAIL  # timed-out reports fail the default gates
    assert_no_processes_left()


def test_429_retry_after_is_honoured_and_counted_apart(tmp_path: Path) -> None:
    """429 with Retry-After: 1: each is counted (http_429 and the throttled counter, as the VTN injected them); the
    VEN sends nothing for 1 s, so its next reports wait (response time > 1 s, service time short) or are abandoned."""
    faults = parse_faults({"throttle_rate": "0.3", "retry_after": "1s", "seed": 3})
    with EmbeddedVtn(VtnConfig(faults=faults)) as vtn:
        p = _profile("throttled", vtn.url, vens=6, interval_s=0.2, reports_per_ven=10, timeout_s=1.0, drain_s=0.5)
        outcome = RunSession(p, tmp_path).run()
        stats = control(vtn, "stats")
    doc = outcome.summary
    throttled = doc["errors"]["http_429"]["count"]
    assert throttled > 0
    assert doc["counters"]["throttled"] == throttled
    assert throttled + doc["counters"].get("setup_transient_failures", 0) == stats["faults"]["injected"]["429"]
    assert set(doc["errors"]) <= {"http_429", "not_ready", "abandoned"}
    ok, errs, due = report_accounting(doc)
    assert due == 6 * 10 and ok + errs == due
    rep = doc["operations"]["report"]
    assert rep["response_time"]["max_ms"] >= 1000 and rep["service_time"]["max_ms"] < 500
    # Reports sent = due - those held back and abandoned - those missed while not provisioned.
    sent = sum(stats["requests"]["POST /reports"].values())
    held = doc["errors"].get("abandoned", {}).get("count", 0) + doc["errors"].get("not_ready", {}).get("count", 0)
    assert sent == due - held and held > 0
    assert_no_processes_left()


def _full_listener() -> tuple[socket.socket, list[socket.socket]]:
    """A listening socket whose accept queue is full and never drained: new connects get no SYN-ACK."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(0)
    fillers = []
    for _ in range(8):
        s = socket.socket()
        s.settimeout(0.2)
        try:
            s.connect(listener.getsockname())
        except OSError:
            s.close()
            break
        fillers.append(s)
    return listener, fillers


def test_slow_accept_is_connect_timeout() -> None:
    """A server that never accepts (full backlog): the request fails as connect_timeout after the connect timeout."""
    listener, fillers = _full_listener()
    port = listener.getsockname()[1]

    async def attempt() -> tuple[Failure, float]:
        t = AiohttpTransport(f"http://127.0.0.1:{port}", limit=1, timeout_s=5.0, connect_timeout_s=0.3)
        started = time.monotonic()
        try:
            with pytest.raises(Failure) as info:
                await t.send(Request("GET", "/vens"))
        finally:
            await t.close()
        return info.value, time.monotonic() - started

    try:
        failure, took = asyncio.run(attempt())
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert failure.error_class == "connect_timeout"
    assert 0.3 <= took < 2.0


def test_slow_accept_target_at_start_is_exit_4(tmp_path: Path) -> None:
    """`harness run` against a server that never accepts: one line naming the target, exit 4, nothing started."""
    listener, fillers = _full_listener()
    port = listener.getsockname()[1]
    try:
        r = subprocess.run([sys.executable, "-m", "harness", "run", "--target", f"http://127.0.0.1:{port}/openadr3/3.0.1",
                            "--vens", "5", "--timeout", "1s", "--quiet"], capture_output=True, text=True, timeout=60,
                           cwd=tmp_path)
    finally:
        for s in fillers:
            s.close()
        listener.close()
    assert r.returncode == 4, r.stderr
    assert r.stderr.startswith(f"harness: error: target http://127.0.0.1:{port}/openadr3/3.0.1 unreachable")
    assert len(r.stderr.strip().splitlines()) == 1
    assert_no_processes_left()


# ---- worker faults ------------------------------------------------------------------------------------


def test_hung_worker_is_terminated_then_killed_after_the_heartbeat_deadline(tmp_path: Path) -> None:
    """SIGSTOP a worker: after the 2 s heartbeat deadline it is terminated, then killed, and reported lost."""
    pids: list[int] = []
    backend: LocalBackend

    def freeze() -> None:
        pids.append(backend.pids()[0])
        os.kill(pids[0], signal.SIGSTOP)

    backend = OnFirstReports(freeze)
    p = Profile(name="hung", vens=20, interval_s=0.5, reports_per_ven=12, workers=2, seed=3, max_loop_lag_ms=5000,
                heartbeat_s=2.0)
    outcome = RunSession(p, tmp_path, backend=backend).run()
    assert backend.fired_at is not None
    doc = outcome.summary
    w0, w1 = doc["workers"]
    assert (outcome.exit_code, outcome.verdict) == (EXIT_INVALID, "invalid")
    assert w0["status"] == "lost"
    assert w0["detail"] == ("hung (no message for 2s), terminated, then killed: exited with code -9, "
                            "carrying VENs 0..9 (10 VENs)")
    # Heartbeat deadline (2 s, after its last delta up to 1 s before the freeze) + SIGTERM grace (2 s) + polling.
    assert 2.0 <= w0["ended_at_epoch_s"] - backend.fired_at < 6.0
    assert w1["status"] == "done"
    assert any(r.startswith("worker 0 lost: hung") for r in doc["reasons"])
    assert any("sent nothing for" in n and "terminating it" in n for n in doc["run"]["notes"])
    assert not psutil.pid_exists(pids[0]) or psutil.Process(pids[0]).status() == psutil.STATUS_ZOMBIE
    assert_no_processes_left()


# ---- signals ------------------------------------------------------------------------------------------


@contextmanager
def _harness(*args: str, cwd: Path) -> Iterator[subprocess.Popen[str]]:
    """`harness ARGS` with its output piped; killed and reaped if the test fails before it ends."""
    proc = subprocess.Popen([sys.executable, "-m", "harness", *args], cwd=cwd, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        yield proc
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.communicate()


def _wait_for_line(proc: subprocess.Popen[str], pred: Callable[[str], bool], within_s: float = 60) -> str:
    assert proc.stdout is not None
    deadline = time.monotonic() + within_s
    for line in proc.stdout:
        if pred(line):
            return line
        assert time.monotonic() < deadline, "line not seen in time"
    raise AssertionError("output ended before the line was seen")


def _reports_flow(line: str) -> bool:
    return "reports=" in line and " reports=0 " not in line


def test_sigterm_exits_143_with_an_interrupted_summary(tmp_path: Path) -> None:
    """SIGTERM mid-run: drain, write the summary (verdict interrupted), exit 143 within 5 s, no processes left."""
    with _harness("run", "--vens", "40", "--interval", "500ms", "--duration", "120s", "--workers", "2",
                  cwd=tmp_path) as proc:
        _wait_for_line(proc, _reports_flow)
        sent = time.monotonic()
        proc.send_signal(signal.SIGTERM)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    assert proc.returncode == 143, err
    assert took < 5.0
    doc = json.loads(next(tmp_path.glob("runs/*/summary.json")).read_text())
    assert doc["verdict"] == "interrupted" and doc["reasons"] == ["stopped by SIGTERM"]
    assert doc["operations"]["report"]["ok"] > 0
    assert "Traceback" not in err
    assert_no_processes_left()


def _listening_child(pid: int) -> int:
    """The port of the embedded VTN: the one child of `pid` that listens on TCP."""
    for child in psutil.Process(pid).children(recursive=True):
        try:
            conns = child.net_connections(kind="tcp")
        except psutil.Error:
            continue
        for c in conns:
            if c.status == psutil.CONN_LISTEN:
                return int(c.laddr.port)
    raise AssertionError("no listening child")


def test_second_sigint_during_a_stalled_drain_exits_promptly(tmp_path: Path) -> None:
    """The embedded VTN stalls 60 s; Ctrl-C starts a drain that cannot finish; a second Ctrl-C exits 130 within 2 s,
    the summary is still written (report.html is left to `harness report`), and no process is left."""
    with _harness("run", "--vens", "40", "--interval", "500ms", "--duration", "120s", "--workers", "2",
                  cwd=tmp_path) as proc:
        _wait_for_line(proc, _reports_flow)
        control(_listening_child(proc.pid), "stall", {"duration_s": 60})
        proc.send_signal(signal.SIGINT)
        _wait_for_line(proc, lambda line: " draining " in line, within_s=10)
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        out, err = proc.communicate(timeout=30)
        took = time.monotonic() - sent
    assert proc.returncode == 130, err
    assert took < 2.0, f"{took:.2f}s"
    doc = json.loads(next(tmp_path.glob("runs/*/summary.json")).read_text())
    assert doc["verdict"] == "interrupted" and doc["reasons"][0] == "stopped by SIGINT"
    assert "second signal: stopping workers now" in doc["run"]["notes"]
    run_dir = next(tmp_path.glob("runs/*"))
    assert not (run_dir / "report.html").exists()  # the plots wait for `harness report`, not the operator
    assert f"report.html not written (second signal: stopped now; draw it with `harness report {run_dir.relative_to(tmp_path)}`)" in err
    assert "Traceback" not in err
    assert_no_processes_left()


# ---- results folder -----------------------------------------------------------------------------------


def test_unwritable_output_folder_is_one_line_exit_2_before_anything_starts(tmp_path: Path) -> None:
    """--out under a regular file (fails for root too): one line naming the folder, exit 2, no process started."""
    (tmp_path / "a_file").write_text("not a folder")
    started = time.monotonic()
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--out", str(tmp_path / "a_file" / "sub"), "--vens", "5",
                        "--quiet"], capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith(f"harness: error: output folder {tmp_path / 'a_file' / 'sub' / 'runs'} is not writable")
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    assert time.monotonic() - started < 10
    assert_no_processes_left()


# ---- secrets ------------------------------------------------------------------------------------------

BL_SECRET = "bl-Sekr1t-4c1d-OTTER"
VEN_SECRET = "ven-Sekr1t-7f3e-BADGER"
TOKEN_SHAPE = re.compile(r"(?<![A-Za-z0-9_-])[A-Za-z0-9_-]{43}(?![A-Za-z0-9_-])")  # secrets.token_urlsafe(32)


def test_secrets_and_tokens_never_appear_in_logs_views_or_results(tmp_path: Path) -> None:
    """Distinctive secrets, a VTN logging every request: neither secret, no bearer token, appears in the VTN's log,
    the live view, stderr, or any file of the results folder (report.html included)."""
    env = dict(os.environ, HARNESS_BL_SECRET=BL_SECRET, HARNESS_VEN_SECRET=VEN_SECRET)
    vtn = subprocess.Popen([sys.executable, "-m", "harness", "vtn", "--port", "0", "--access-log", "--db",
                            str(tmp_path / "vtn.sqlite")], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                           env=env)
    try:
        assert vtn.stderr is not None
        vtn_log = [vtn.stderr.readline() for _ in range(1)]
        while "serving" not in vtn_log[-1]:
            vtn_log.append(vtn.stderr.readline())
            assert vtn_log[-1], "the VTN exited before serving"
        url = re.search(r"at (http://\S+)", vtn_log[-1]).group(1)  # type: ignore[union-attr]
        # A token of our own shows what an access token looks like here.
        form = f"grant_type=client_credentials&client_id=ven-probe&client_secret={VEN_SECRET}".encode()
        with urllib.request.urlopen(urllib.request.Request(url + "/auth/token", data=form), timeout=10) as r:
            own_token = json.loads(r.read())["access_token"]
        assert TOKEN_SHAPE.fullmatch(own_token)
        run = subprocess.run([sys.executable, "-m", "harness", "run", "--target", url, "--vens", "10", "--interval",
                              "300ms", "--reports-per-ven", "4", "--workers", "1", "--max-loop-lag", "5s", "--out",
                              str(tmp_path)], capture_output=True, text=True, timeout=120, cwd=tmp_path, env=env)
        assert run.returncode == 0, run.stderr
        run_dir = next(tmp_path.glob("runs/*"))
        report = subprocess.run([sys.executable, "-m", "harness", "report", str(run_dir)], capture_output=True,
                                text=True, timeout=120, env=env)
        assert report.returncode == 0, report.stderr
    finally:
        vtn.send_signal(signal.SIGINT)
        rest_out, rest_err = vtn.communicate(timeout=30)
    texts = {"vtn log": "".join(vtn_log) + rest_err + rest_out, "run stdout": run.stdout, "run stderr": run.stderr,
             "report output": report.stdout + report.stderr}
    names = {p.name for p in run_dir.iterdir()}
    assert {"summary.json", "series.csv", "health.csv", "junit.xml", "report.html"} <= names
    for p in run_dir.iterdir():
        if p.suffix in (".json", ".csv", ".xml", ".html"):
            texts[p.name] = p.read_text(errors="replace")
    assert "POST /openadr3/3.0.1/reports" in texts["vtn log"]  # the access log did log the run's requests
    assert "reports=" in texts["run stdout"]  # and the live view (plain lines) printed
    for where, text in texts.items():
        for secret in (BL_SECRET, VEN_SECRET, own_token):
            assert secret not in text, f"{secret!r} in {where}"
        assert "Bearer " not in text, where
        assert TOKEN_SHAPE.findall(text) == [], (where, TOKEN_SHAPE.findall(text)[:3])
    assert_no_processes_left()


def test_full_output_folder_is_found_before_anything_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """An output folder with less free space than a run needs: OutputError naming it, before the VTN or a worker."""
    from harness.sinks import resultsdir

    monkeypatch.setattr(resultsdir, "MIN_FREE_BYTES", 2**62)  # more than any disk has
    backend = LocalBackend()
    with pytest.raises(resultsdir.OutputError, match=rf"^output folder {re.escape(str(tmp_path / 'runs'))} is full: "):
        RunSession(Profile(name="full", vens=5, reports_per_ven=1), tmp_path, backend=backend).run()
    assert backend.pids() == {} and list((tmp_path / "runs").iterdir()) == []
    assert_no_processes_left()
