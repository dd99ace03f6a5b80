"""Running the VTN: `serve` in this process (stopped by its fd) and `EmbeddedVtn` as a spawned child."""

from __future__ import annotations

import json
import os
import sqlite3
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from harness.vtn import EmbeddedVtn, VtnConfig, serve


def post_form(url: str, form: dict[str, str]) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=urllib.parse.urlencode(form).encode(), method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, json.loads(resp.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def post_json(url: str, body: Any, token: str) -> tuple[int, Any]:
    req = urllib.request.Request(url, data=json.dumps(body).encode(), method="POST",
                                 headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=10) as resp:
        return resp.status, json.loads(resp.read())


def token(base: str, client_id: str = "bl", secret: str = "bl-secret") -> str:
    status, body = post_form(base + "/auth/token", {"grant_type": "client_credentials", "client_id": client_id,
                                                   "client_secret": secret})
    assert status == 200, body
    return str(body["access_token"])


def is_gone(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    return False


def test_serve_in_process_stops_on_its_fd_and_commits(tmp_path: Path) -> None:
    """serve() reports its port, serves, and on EOF of stop_fd finishes, commits and returns."""
    db = tmp_path / "vtn.sqlite"
    read_fd, write_fd = os.pipe()
    ports: list[int] = []
    ready = threading.Event()
    errors: list[BaseException] = []

    def run() -> None:
        try:
            serve(VtnConfig(db_path=str(db)), ready=lambda p: (ports.append(p), ready.set()), stop_fd=read_fd)
        except BaseException as exc:  # surfaced below
            errors.append(exc)
            ready.set()

    thread = threading.Thread(target=run)
    thread.start()
    try:
        assert ready.wait(20), "serve() never reported its port"
        assert not errors, errors
        base = f"http://127.0.0.1:{ports[0]}/openadr3/3.0.1"
        status, program = post_json(base + "/programs", {"programName": "p"}, token(base))
        assert status == 201
    finally:
        os.close(write_fd)
        thread.join(20)
        os.close(read_fd)
    assert not thread.is_alive() and not errors
    with sqlite3.connect(db) as conn:
        assert conn.execute("SELECT id FROM programs").fetchall() == [(program["id"],)]


def test_embedded_vtn_starts_serves_and_stops(tmp_path: Path) -> None:
    """EmbeddedVtn spawns a child that reports a port, serves a token and a report, then stops with exit 0."""
    config = VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))
    vtn = EmbeddedVtn(config)
    with vtn:
        assert vtn.port > 0 and vtn.is_alive
        assert vtn.url == f"http://127.0.0.1:{vtn.port}/openadr3/3.0.1"
        pid = vtn.pid
        assert pid is not None and pid != os.getpid()
        bl = token(vtn.url)
        _, program = post_json(vtn.url + "/programs", {"programName": "p"}, bl)
        _, event = post_json(vtn.url + "/events", {"programID": program["id"], "intervals": []}, bl)
        ven = token(vtn.url, "ven-one", "ven-secret")
        status, _ = post_json(vtn.url + "/reports", {"programID": program["id"], "eventID": event["id"],
                                                     "clientName": "one", "resources": []}, ven)
        assert status == 201
    assert not vtn.is_alive
    assert is_gone(pid)
    with sqlite3.connect(config.db_path) as conn:
        assert conn.execute("SELECT count(*) FROM reports").fetchone() == (1,)


def test_embedded_vtn_exits_when_its_parent_pipe_closes(tmp_path: Path) -> None:
    """Closing the parent's end of the pipe (as the parent's death would) makes the child exit by itself."""
    vtn = EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))).start()
    process = vtn._process
    assert process is not None and vtn._conn is not None
    vtn._conn.close()
    process.join(20)
    assert process.exitcode == 0
    vtn._conn = None
    vtn.stop()


def test_embedded_vtn_start_failure_is_a_clear_error(tmp_path: Path) -> None:
    """A child that cannot start (its port is taken) raises RuntimeError with the cause, leaving no process."""
    with EmbeddedVtn(VtnConfig(db_path=":memory:")) as first:
        taken = replace(first.config, port=first.port)
        with pytest.raises(RuntimeError, match="embedded VTN failed to start: OSError"):
            EmbeddedVtn(taken, start_timeout_s=20).start()
        assert first.is_alive


def test_config_validation_names_the_option() -> None:
    """VtnConfig rejects bad values with a message naming the option."""
    with pytest.raises(ValueError, match="^port must be 0..65535, got 70000$"):
        VtnConfig(port=70000)
    with pytest.raises(ValueError, match="^base_path must be empty or start with '/'"):
        VtnConfig(base_path="openadr3/")
    with pytest.raises(ValueError, match="^token_ttl must be > 0, got 0"):
        VtnConfig(token_ttl_s=0)
    assert "secret" not in repr(VtnConfig(bl_client_secret="s3cr3t")).replace("client_secret", "")
    assert "s3cr3t" not in repr(VtnConfig(bl_client_secret="s3cr3t", ven_client_secret="s3cr3t"))


def test_embedded_vtn_stops_cleanly_on_sigterm(tmp_path: Path) -> None:
    """SIGTERM (what terminate() sends) makes the child finish, commit and exit 0."""
    import signal

    vtn = EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"))).start()
    try:
        bl = token(vtn.url)
        post_json(vtn.url + "/programs", {"programName": "p"}, bl)
        assert vtn.pid is not None
        os.kill(vtn.pid, signal.SIGTERM)
        assert vtn._process is not None
        vtn._process.join(20)
        assert vtn._process.exitcode == 0
    finally:
        vtn.stop()
    with sqlite3.connect(tmp_path / "vtn.sqlite") as conn:
        assert conn.execute("SELECT count(*) FROM programs").fetchone() == (1,)


def test_a_faulted_vtn_stops_at_once_and_still_answers_what_it_held(tmp_path: Path) -> None:
    """Injected waits are not work the VTN owes: a response held by a 600 s stall does not hold the stop (its
    shutdown would wait 600 s for it, the parent 60 s before terminating: exit -15); the held request is
    answered and the child exits 0."""
    vtn = EmbeddedVtn(VtnConfig(db_path=str(tmp_path / "vtn.sqlite"), shutdown_timeout_s=600)).start()
    try:
        stall = urllib.request.Request(vtn.url.split("/openadr3")[0] + "/_harness/stall", method="POST",
                                       data=json.dumps({"duration_s": 600}).encode(),
                                       headers={"Content-Type": "application/json"})
        urllib.request.urlopen(stall, timeout=10).close()
        answers: list[int] = []
        held = threading.Thread(target=lambda: answers.append(
            post_form(vtn.url + "/auth/token", {"grant_type": "client_credentials", "client_id": "bl",
                                                "client_secret": "bl-secret"})[0]))
        held.start()
        stats_url = vtn.url.split("/openadr3")[0] + "/_harness/stats"
        deadline = time.monotonic() + 20
        while json.loads(urllib.request.urlopen(stats_url, timeout=10).read())["faults"]["stalled_responses"] < 1:
            assert time.monotonic() < deadline, "the token request was never held"
        code = vtn.stop(timeout=60.0)
        held.join(20)
    finally:
        vtn.stop()
    assert code == 0
    assert answers == [200]
