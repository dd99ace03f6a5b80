"""Running the VTN: `serve` (blocking, one uvloop loop for its whole life) and `EmbeddedVtn` (spawned children).

The parent side creates no event loop, session or thread: it spawns the child with a picklable `VtnConfig`,
learns the port over a Pipe, and stops it by that pipe; the child also stops on EOF, so it dies with its parent.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from dataclasses import replace
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Any, Callable

import uvloop
from aiohttp import web

from harness.host import collector
from harness.vtn.app import make_app
from harness.vtn.config import VtnConfig
from harness.vtn.null import NullVtnProtocol

log = logging.getLogger(__name__)

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


def serve(
    config: VtnConfig,
    *,
    ready: Callable[[int], None] | None = None,
    stop_fd: int | None = None,
    stop_signals: tuple[int, ...] = STOP_SIGNALS,
) -> None:
    """Serve until a stop signal arrives or `stop_fd` becomes readable (data or EOF); then finish in-flight
    requests (up to `config.shutdown_timeout_s`), commit and close everything inside the loop."""
    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(_serve(config, ready, stop_fd, stop_signals))


async def _serve(
    config: VtnConfig, ready: Callable[[int], None] | None, stop_fd: int | None, stop_signals: tuple[int, ...]
) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    if config.access_log and not logging.getLogger().handlers:
        logging.basicConfig(level=logging.INFO, format="%(message)s")
    runner: web.AppRunner | None = None
    server: asyncio.AbstractServer | None = None
    installed: list[int] = []
    try:
        if config.null:
            # Wire speed, nothing stored: a Protocol per connection, no aiohttp. With several processes every
            # one binds the same port (SO_REUSEPORT) and the kernel spreads connections over them.
            server = await loop.create_server(
                NullVtnProtocol, config.host, config.port, backlog=4096, reuse_address=True,
                reuse_port=config.processes > 1,
            )
            port = int(server.sockets[0].getsockname()[1])
        else:
            runner = web.AppRunner(
                make_app(config), access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
                shutdown_timeout=config.shutdown_timeout_s, handle_signals=False,
            )
            await runner.setup()
            site = web.TCPSite(runner, config.host, config.port, backlog=1024, reuse_address=True)
            await site.start()
            port = _bound_port(runner)
        for sig in stop_signals:
            try:
                loop.add_signal_handler(sig, stop.set)
                installed.append(sig)
            except (ValueError, RuntimeError):  # not the main thread: the caller stops us by stop_fd
                pass
        if stop_fd is not None:
            def on_stop_fd() -> None:
                loop.remove_reader(stop_fd)
                stop.set()

            loop.add_reader(stop_fd, on_stop_fd)
        log.info("%s VTN listening on http://%s:%d%s", "null" if config.null else "OpenADR", config.host, port, config.base_path)
        if ready is not None:
            ready(port)
        await stop.wait()
    finally:
        if stop_fd is not None:
            loop.remove_reader(stop_fd)
        for sig in installed:
            loop.remove_signal_handler(sig)
        if server is not None:
            server.close()
        if runner is not None:
            await runner.cleanup()


def _bound_port(runner: web.AppRunner) -> int:
    for addr in runner.addresses:
        if isinstance(addr, tuple) and len(addr) >= 2:
            return int(addr[1])
    raise RuntimeError(f"the VTN is not listening on a TCP port: {runner.addresses!r}")


def _child_main(config: VtnConfig, conn: Connection) -> None:
    """Entry of the spawned VTN process. SIGINT is ignored: the parent decides when the VTN stops (it keeps
    serving while the workers drain), by a message or EOF on `conn`."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    collector.tune()
    try:
        serve(config, ready=lambda port: conn.send(("ready", port)), stop_fd=conn.fileno(),
              stop_signals=(signal.SIGTERM,))
    except BaseException as exc:
        try:
            conn.send(("error", f"{type(exc).__name__}: {exc}"))
        except (OSError, ValueError):
            pass
        raise SystemExit(1) from None
    finally:
        conn.close()


class EmbeddedVtn:
    """The VTN in a spawned child process. `with EmbeddedVtn(config) as vtn: use(vtn.url)`."""

    def __init__(self, config: VtnConfig, *, start_timeout_s: float = 20.0) -> None:
        self.config = config
        self._start_timeout_s = start_timeout_s
        self._process: multiprocessing.process.BaseProcess | None = None
        self._conn: Connection | None = None
        self._more: list[tuple[multiprocessing.process.BaseProcess, Connection]] = []  # processes 2..N
        self._starting: tuple[multiprocessing.process.BaseProcess, Connection] | None = None
        self._pid: int | None = None
        self.port = 0
        self.broker: Any = None  # the MQTT broker a run started for this VTN (harness.vtn.broker.Broker), if any

    @property
    def url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.config.base_path}"

    @property
    def url_31(self) -> str:
        """The URL of the OpenADR 3.1.0 API served beside 3.0.1."""
        if self.config.base_path_31 is None:
            raise RuntimeError("this VTN serves no OpenADR 3.1.0 API (base_path_31 is None)")
        return self.url.removesuffix(self.config.base_path) + self.config.base_path_31

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def pids(self) -> list[int]:
        """Every serving process (more than one with `processes` > 1)."""
        procs = ([self._process] if self._process is not None else []) + [p for p, _ in self._more]
        return [p.pid for p in procs if p.pid is not None]

    @property
    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> EmbeddedVtn:
        if self._process is not None:
            raise RuntimeError("EmbeddedVtn already started")
        try:
            self._process, self._conn, self.port = self._spawn(self.config)
            self._pid = self._process.pid
            # More processes (null VTN): each binds the port the first one got, with SO_REUSEPORT.
            fixed = replace(self.config, port=self.port)
            for _ in range(self.config.processes - 1):
                process, conn, _port = self._spawn(fixed)
                self._more.append((process, conn))
        except BaseException:
            self.stop(timeout=2.0)
            raise
        return self

    def _spawn(self, config: VtnConfig) -> tuple[multiprocessing.process.BaseProcess, Connection, int]:
        """Start one child serving `config`; return it, its pipe and its port once it is listening."""
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_child_main, args=(config, child), name="harness-vtn", daemon=True)
        process.start()
        child.close()
        self._starting = (process, parent)  # stop() reaps it if it never gets ready
        deadline = time.monotonic() + self._start_timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise RuntimeError(f"embedded VTN did not report its port within {self._start_timeout_s:g}s")
            if parent.poll(min(remaining, 0.1)):
                try:
                    kind, value = parent.recv()
                except EOFError:
                    raise RuntimeError(
                        f"embedded VTN exited before it was ready (exit code {process.exitcode})"
                    ) from None
                if kind == "ready":
                    self._starting = None
                    return process, parent, int(value)
                raise RuntimeError(f"embedded VTN failed to start: {value}")
            if not process.is_alive():
                raise RuntimeError(f"embedded VTN exited before it was ready (exit code {process.exitcode})")

    def kill(self) -> None:
        """SIGKILL the (first) serving process: no in-flight request finishes, nothing more is committed."""
        if self._process is not None:
            self._process.kill()
            self._process.join(5.0)
            if self._conn is not None:
                self._conn.close()
            self._process, self._conn = None, None

    def start_again(self) -> EmbeddedVtn:
        """A stopped or killed VTN served again on the same port and store (issued tokens are gone with it)."""
        self.config = replace(self.config, port=self.port)
        self._process, self._conn, self.port = self._spawn(self.config)
        return self

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ask the children to stop (finish in-flight requests, commit, close), then escalate to terminate and
        kill. Returns the (first) child's exit code."""
        children: list[tuple[multiprocessing.process.BaseProcess, Connection | None]] = (
            [(self._process, self._conn)] if self._process is not None else []) + list(self._more)
        if self._starting is not None:
            children.append(self._starting)
        self._process, self._conn, self._more, self._starting = None, None, [], None
        if not children:
            return None
        for _, conn in children:
            try:
                if conn is not None:
                    conn.send(("stop", None))
            except (OSError, ValueError):
                pass
        deadline = time.monotonic() + timeout
        codes = []
        for process, conn in children:
            process.join(max(0.0, deadline - time.monotonic()))
            if process.is_alive():
                log.warning("embedded VTN (pid %s) did not stop within %.1fs; terminating", process.pid, timeout)
                process.terminate()
                process.join(2.0)
            if process.is_alive():
                process.kill()
                process.join(2.0)
            if conn is not None:
                conn.close()
            codes.append(process.exitcode)
            if not process.is_alive():
                process.close()
        return codes[0]

    def __enter__(self) -> EmbeddedVtn:
        return self if self._process is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

