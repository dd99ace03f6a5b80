"""Running the VTN: `serve` (blocking, one uvloop loop for its whole life) and `EmbeddedVtn` (a spawned child).

The parent side creates no event loop, session or thread: it spawns the child with a picklable `VtnConfig`,
learns the port over a Pipe, and stops it by that pipe; the child also stops on EOF, so it dies with its parent.
"""

from __future__ import annotations

import asyncio
import logging
import multiprocessing
import signal
import time
from multiprocessing.connection import Connection
from types import TracebackType
from typing import Callable

import uvloop
from aiohttp import web

from harness.vtn.app import make_app
from harness.vtn.config import VtnConfig

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
    app = make_app(config)
    runner = web.AppRunner(
        app, access_log=logging.getLogger("aiohttp.access") if config.access_log else None,
        shutdown_timeout=config.shutdown_timeout_s, handle_signals=False,
    )
    await runner.setup()
    installed: list[int] = []
    try:
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
        log.info("VTN listening on http://%s:%d%s", config.host, port, config.base_path)
        if ready is not None:
            ready(port)
        await stop.wait()
    finally:
        if stop_fd is not None:
            loop.remove_reader(stop_fd)
        for sig in installed:
            loop.remove_signal_handler(sig)
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
        self._pid: int | None = None
        self.port = 0

    @property
    def url(self) -> str:
        host = self.config.host
        if host in ("0.0.0.0", "", "::"):
            host = "127.0.0.1"
        elif ":" in host:
            host = f"[{host}]"
        return f"http://{host}:{self.port}{self.config.base_path}"

    @property
    def pid(self) -> int | None:
        return self._pid

    @property
    def is_alive(self) -> bool:
        return self._process is not None and self._process.is_alive()

    def start(self) -> EmbeddedVtn:
        if self._process is not None:
            raise RuntimeError("EmbeddedVtn already started")
        ctx = multiprocessing.get_context("spawn")
        parent, child = ctx.Pipe(duplex=True)
        process = ctx.Process(target=_child_main, args=(self.config, child), name="harness-vtn", daemon=True)
        process.start()
        child.close()
        self._pid = process.pid
        self._process, self._conn = process, parent
        deadline = time.monotonic() + self._start_timeout_s
        try:
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
                        self.port = int(value)
                        return self
                    raise RuntimeError(f"embedded VTN failed to start: {value}")
                if not process.is_alive():
                    raise RuntimeError(f"embedded VTN exited before it was ready (exit code {process.exitcode})")
        except BaseException:
            self.stop(timeout=2.0)
            raise

    def stop(self, timeout: float = 10.0) -> int | None:
        """Ask the child to stop (finish in-flight requests, commit, close), then escalate to terminate and
        kill. Returns the child's exit code."""
        process, conn = self._process, self._conn
        if process is None:
            return None
        if conn is not None:
            try:
                conn.send(("stop", None))
            except (OSError, ValueError):
                pass
        process.join(timeout)
        if process.is_alive():
            log.warning("embedded VTN (pid %s) did not stop within %.1fs; terminating", process.pid, timeout)
            process.terminate()
            process.join(2.0)
        if process.is_alive():
            process.kill()
            process.join(2.0)
        if conn is not None:
            conn.close()
        self._conn = None
        code = process.exitcode
        if not process.is_alive():
            process.close()
        self._process = None
        return code

    def __enter__(self) -> EmbeddedVtn:
        return self if self._process is not None else self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()

