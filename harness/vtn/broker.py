"""The embedded VTN's MQTT broker: Mosquitto when installed, else amqtt (pure Python), in a process of its own.

Edge. The parent side creates no event loop or thread: it writes a config, starts the broker, waits until an
MQTT CONNECT is acknowledged (with a deadline, never a sleep) and stops it (SIGTERM, then SIGKILL).

What the embedded VTN publishes there (for VEN-side code; names come from `harness.vtn.topics`):
- Discovery: `GET {base31}/notifiers` → `{"WEBHOOK": true, "MQTT": {"URIS": ["mqtt://127.0.0.1:PORT"],
  "serialization": "JSON", "authentication": {"method": "ANONYMOUS"}}}`; the topic endpoints under
  `{base31}/notifiers/mqtt/topics/...` answer `{"topics": {"CREATE": .., "UPDATE": .., "DELETE": .., "ALL": "../+"}}`.
- Topics, `{op}` one of create, update, delete:
  `programs/{op}`, `programs/{programID}/{update,delete}`, `events/{op}`, `programs/{programID}/events/{op}`,
  `reports/{op}`, `subscriptions/{op}`, `vens/{op}`, `resources/{op}` (fleet-wide: every object, whole targets),
  and VEN-specific: `vens/{venID}/events/{op}`, `vens/{venID}/programs/{op}` (only the VENs that may read the
  object: untargeted → every VEN, targeted → the VENs granted one of its targets), `vens/{venID}/resources/{op}`,
  `vens/{venID}/{update,delete}` (its own ven record).
- Payload: the 3.1.0 notification, camelCase, JSON once: `{"objectType": "EVENT", "operation": "CREATE",
  "object": {...the object as GET returns it...}, "targets": [...] | null}`; on a VEN topic the object's
  targets are cut down to the VEN's grants. QoS as configured (default 1), not retained.
- Counts: `GET /_harness/stats` → `"mqtt": {"published", "acked", "inflight", "queued", "batches", "resent", "dropped",
  "reconnects", "ven_topics", "by_family": {"vens/{venID}/events/create": N, ...}}`; `GET /_harness/mqtt` adds
  `"by_topic"` and `"by_venID"`-keyed `"by_ven"` counts. `published` counts each notification once.
"""

from __future__ import annotations

import ctypes
import logging
import os
import pwd
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from types import TracebackType
from typing import IO, Literal

import psutil  # type: ignore[import-untyped]

log = logging.getLogger(__name__)

Kind = Literal["auto", "mosquitto", "amqtt"]
MOSQUITTO_FALLBACK_PATH = "/usr/sbin/mosquitto"  # Debian's package puts it outside a user's PATH


def find_mosquitto() -> str | None:
    found = shutil.which("mosquitto")
    if found:
        return found
    return MOSQUITTO_FALLBACK_PATH if os.access(MOSQUITTO_FALLBACK_PATH, os.X_OK) else None


class BrokerError(RuntimeError):
    """The broker could not be started (the message says why, in one line)."""


class Broker:
    """`with Broker() as b: use(b.url)`. `kind="auto"` takes Mosquitto when found, else amqtt; `persistence`
    (Mosquitto only) keeps sessions and queued QoS 1 messages across `restart()`."""

    def __init__(self, *, kind: Kind = "auto", host: str = "127.0.0.1", port: int = 0, persistence: bool = False,
                 start_timeout_s: float = 15.0) -> None:
        if kind == "auto":
            kind = "mosquitto" if find_mosquitto() else "amqtt"
        if kind == "mosquitto" and not find_mosquitto():
            raise BrokerError("mosquitto is not installed (apt-get install mosquitto), or use the amqtt broker")
        if persistence and kind != "mosquitto":
            raise BrokerError("broker persistence needs mosquitto; amqtt keeps no sessions across a restart")
        self.kind: Literal["mosquitto", "amqtt"] = kind
        self.host = host
        self.port = port
        self.persistence = persistence
        self.start_timeout_s = start_timeout_s
        self._dir: tempfile.TemporaryDirectory[str] | None = None
        self._proc: subprocess.Popen[bytes] | None = None
        self._log: IO[bytes] | None = None

    @property
    def url(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return f"mqtt://{host}:{self.port}"

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def is_alive(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self) -> Broker:
        if self._proc is not None:
            raise BrokerError("broker already started")
        created = self._dir is None
        if self._dir is None:
            self._dir = tempfile.TemporaryDirectory(prefix="harness-broker-")
        fixed = self.port != 0
        for attempt in range(3):
            if not fixed:
                self.port = _free_port(self.host)
            try:
                self._launch()
                return self
            except BrokerError as exc:
                self._reap()
                # Another process can take a free port between our probe and the broker's bind: try another.
                if fixed or attempt == 2 or "in use" not in str(exc).lower():
                    if created and self._dir is not None:  # a restart keeps its directory (and sessions)
                        self._dir.cleanup()
                        self._dir = None
                    raise
        raise AssertionError("unreachable")

    def _launch(self) -> None:
        assert self._dir is not None
        workdir = Path(self._dir.name)
        self._log = open(workdir / "broker.log", "ab")
        if self.kind == "mosquitto":
            conf = workdir / "mosquitto.conf"
            conf.write_text(_mosquitto_conf(self.host, self.port, self.persistence, workdir), encoding="utf-8")
            argv = [find_mosquitto() or "mosquitto", "-c", str(conf)]
        else:
            argv = [sys.executable, "-m", "harness.vtn.broker", self.host, str(self.port)]
        self._proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=self._log, stderr=subprocess.STDOUT,
                                      preexec_fn=_die_with_parent, cwd=workdir,
                                      start_new_session=True)  # a terminal's Ctrl-C is for harness; it stops us
        wait_ready(self.host, self.port, time.monotonic() + self.start_timeout_s, self._proc,
                   lambda: self._log_tail())
        log.info("%s broker (pid %d) ready at %s", self.kind, self._proc.pid, self.url)

    def _log_tail(self) -> str:
        if self._dir is None:
            return ""
        try:
            lines = (Path(self._dir.name) / "broker.log").read_text(errors="replace").strip().splitlines()
        except OSError:
            return ""
        return lines[-1][:200] if lines else ""

    def stop(self, timeout_s: float = 5.0) -> int | None:
        """SIGTERM (Mosquitto saves its persistence file), then SIGKILL after `timeout_s`. The exit code."""
        code = self._reap(timeout_s)
        return code

    def _reap(self, timeout_s: float = 5.0) -> int | None:
        proc, self._proc = self._proc, None
        code = None
        if proc is not None:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    log.warning("%s broker (pid %d) did not stop in %.1fs; killing it", self.kind, proc.pid, timeout_s)
                    proc.kill()
                    proc.wait(5.0)
            code = proc.returncode
        if self._log is not None:
            self._log.close()
            self._log = None
        return code

    def restart(self, timeout_s: float = 5.0) -> None:
        """Stop, then start again on the same port (a persistent broker keeps its sessions)."""
        self._reap(timeout_s)
        self._launch()

    def close(self) -> None:
        self._reap()
        if self._dir is not None:
            self._dir.cleanup()
            self._dir = None

    def __enter__(self) -> Broker:
        return self if self._proc is not None else self.start()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.close()


def _mosquitto_conf(host: str, port: int, persistence: bool, workdir: Path) -> str:
    lines = [
        f"listener {port} {host}",
        # Run as whoever started it: as root, mosquitto would switch to user "mosquitto", which may not write the
        # persistence file into our directory.
        f"user {pwd.getpwuid(os.getuid()).pw_name}",
        "allow_anonymous true",
        "max_connections -1",
        # No cap on messages queued for a client (QoS 1 to an offline persistent session or beyond its
        # in-flight window): a notification the broker drops would be counted as lost by the VENs.
        "max_queued_messages 0",
        f"persistence {'true' if persistence else 'false'}",
        "log_dest stderr",
        "log_type error",
        "log_type warning",
        "log_type notice",
    ]
    if persistence:
        lines += [f"persistence_location {workdir}/", "autosave_interval 0"]
    return "\n".join(lines) + "\n"


def wait_ready(host: str, port: int, deadline: float, proc: subprocess.Popen[bytes] | None = None,
               why: object = None) -> None:
    """Return once the broker at host:port acknowledges an MQTT CONNECT; BrokerError if `proc` exits first or
    the deadline passes. Between refused attempts it waits on the process (so an exit ends the wait at once)."""
    last = ""
    while True:
        try:
            # Our process must hold the listening socket: a CONNACK from another broker already on the port
            # would otherwise pass for ours while ours fails to bind.
            if proc is not None and not _listens(proc.pid, port):
                raise ConnectionRefusedError(f"pid {proc.pid} is not listening on port {port} yet")
            _probe(host, port, max(0.1, min(2.0, deadline - time.monotonic())))
            return
        except OSError as exc:
            last = f"{type(exc).__name__}: {exc}"
        if proc is not None:
            try:
                proc.wait(0.02)
                tail = why() if callable(why) else ""
                raise BrokerError(f"broker exited with code {proc.returncode} before it was ready: {tail or last}")
            except subprocess.TimeoutExpired:
                pass
        if time.monotonic() >= deadline:
            raise BrokerError(f"broker at {host}:{port} not ready before the deadline: {last}")
        if proc is None:
            time.sleep(0.02)  # a retry interval for a broker we did not start (no process to wait on)


def _probe(host: str, port: int, timeout_s: float) -> None:
    """One MQTT 3.1.1 CONNECT → CONNACK round trip, then DISCONNECT (OSError when refused or malformed)."""
    client_id = f"harness-probe-{os.getpid()}".encode()
    variable = b"\x00\x04MQTT\x04\x02\x00\x05"  # protocol name, level 4, clean session, keepalive 5 s
    payload = len(client_id).to_bytes(2, "big") + client_id
    packet = b"\x10" + bytes([len(variable) + len(payload)]) + variable + payload
    with socket.create_connection((host, port), timeout=timeout_s) as sock:
        sock.sendall(packet)
        reply = b""
        while len(reply) < 4:
            chunk = sock.recv(4 - len(reply))
            if not chunk:
                raise ConnectionResetError("broker closed the connection before CONNACK")
            reply += chunk
        if reply[0] != 0x20 or reply[3] != 0:
            raise ConnectionRefusedError(f"broker refused the CONNECT (CONNACK {reply.hex()})")
        sock.sendall(b"\xe0\x00")


def _listens(pid: int, port: int) -> bool:
    try:
        conns = psutil.Process(pid).net_connections(kind="tcp")
    except (psutil.NoSuchProcess, psutil.AccessDenied):
        return False
    return any(c.status == psutil.CONN_LISTEN and c.laddr and c.laddr.port == port for c in conns)


def _free_port(host: str) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    """In the child before exec: SIGTERM when the parent dies, so no broker outlives a killed run (Linux)."""
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG
        except (OSError, AttributeError):
            pass


def _amqtt_main(host: str, port: int) -> None:
    """The fallback broker's process: amqtt on one asyncio loop until SIGTERM or SIGINT."""
    import asyncio

    from amqtt.broker import Broker as AmqttBroker  # type: ignore[import-untyped]

    logging.basicConfig(level=logging.WARNING, format="amqtt: %(levelname)s %(message)s")
    logging.getLogger("transitions").setLevel(logging.ERROR)

    async def serve() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        broker = AmqttBroker({
            "listeners": {"default": {"type": "tcp", "bind": f"{host}:{port}", "max_connections": -1}},
            "plugins": {"amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}},
        })
        await broker.start()
        await stop.wait()
        await broker.shutdown()

    asyncio.run(serve())


if __name__ == "__main__":
    if len(sys.argv) != 3 or not sys.argv[2].isdigit():
        sys.exit("usage: python -m harness.vtn.broker HOST PORT")
    try:
        _amqtt_main(sys.argv[1], int(sys.argv[2]))
    except Exception as exc:  # noqa: BLE001 - one line to the parent's log, no traceback
        sys.exit(f"amqtt broker failed on {sys.argv[1]}:{sys.argv[2]}: {type(exc).__name__}: {exc}")
