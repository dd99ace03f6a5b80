"""Shards on a Dask cluster: one long-running Dask task per shard runs `harness.run.worker.main` in a fresh child
process and relays pickled messages through scheduler queues, so the supervisor's merge, view and results
are those of a local run.

Edge. Dask is imported lazily (the `cluster` extra). The supervisor side is a synchronous `distributed.Client`
whose IO thread is Dask's comm thread: no aiohttp/uvloop object of harness lives there, and it exists only with
--cluster. Every shard's event loop lives and dies in its own child process, exactly as a local worker's does.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import os
import pickle
import queue
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from multiprocessing.connection import Connection
from typing import Any
from urllib.parse import urlsplit

from harness.core.shard import ShardSpec

EXIT_USAGE, EXIT_ABORTED = 2, 4
INSTALL_HINT = "pip install 'harness[cluster]'"
CONNECT_TIMEOUT_S = 10.0
CLAIM_TIMEOUT_S = 5.0
RELAY_TICK_S = 0.2  # the relay waits this long on its child's pipe, then looks at the control queue
LIVENESS_EVERY_S = 1.0  # how often the relay asks whether its task was cancelled
WORKERS_CHECK_EVERY_S = 2.0  # how often the supervisor asks the scheduler which workers are still there
CHILD_EXIT_TIMEOUT_S = 5.0
CHILD_FLAG = "--harness-shard-child"  # marks the process in `ps`, with the run id and worker id after the fds
# Ctrl-C belongs to the supervisor: the child ignores SIGINT before importing anything.
CHILD_CODE = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "from harness.run.cluster import _child_main; _child_main(int(sys.argv[2]), int(sys.argv[3]))"
)
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+$")
_LOCAL = re.compile(r"^local:(\d+)$")
_DASK_MODULE = "distributed"


class ClusterError(Exception):
    """A --cluster problem to print in one line, with the exit code it maps to."""

    def __init__(self, message: str, exit_code: int = EXIT_ABORTED) -> None:
        super().__init__(message)
        self.exit_code = exit_code


class ShardLost(RuntimeError):
    """Raised inside a Dask task so that its future ends in error and the supervisor reports the shard."""


def parse_address(address: str) -> int | None:
    """`local:N` → N (workers of a LocalCluster to start); a scheduler address → None; else a usage error."""
    m = _LOCAL.match(address)
    if m:
        n = int(m.group(1))
        if n < 1:
            raise ClusterError(f"--cluster local:N needs N >= 1, got {address!r}", EXIT_USAGE)
        return n
    if _ADDRESS.match(address):
        return None
    raise ClusterError(f"--cluster must be a scheduler address like tcp://HOST:8786 or local:N, got {address!r}", EXIT_USAGE)


def require_dask() -> None:
    if importlib.util.find_spec(_DASK_MODULE) is None:
        raise ClusterError(f"--cluster needs Dask, which is not installed: {INSTALL_HINT}", EXIT_USAGE)


def _dask() -> tuple[Any, Any]:
    """dask and distributed, imported on first use (the optional `cluster` extra; untyped, hence Any)."""
    return importlib.import_module("dask"), importlib.import_module("distributed")


@contextmanager
def _sigint_blocked() -> Iterator[None]:
    """Block SIGINT while a LocalCluster spawns: its threads and processes inherit the mask, so Ctrl-C stays the
    supervisor's to handle (it stops shards cooperatively) instead of killing Dask workers under them. A SIGINT
    arriving meanwhile stays pending and is delivered to the supervisor's handler on unblock."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def start_local_cluster(n_workers: int) -> Any:
    """A LocalCluster on loopback: N single-threaded worker processes, no dashboard, allowed-failures 0.

    The scheduler's HTTP server (health routes) still starts: on a free loopback port, not on 8787 (a port
    another cluster may hold, which Dask answers with a warning)."""
    dask, dist = _dask()
    with _sigint_blocked(), dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return dist.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )


class DaskBackend:
    """The Backend protocol (harness.run.backend) over a Dask cluster: one pinned, never re-run task per shard."""

    def __init__(self, address: str, *, join_timeout_s: float = 10.0, connect_timeout_s: float = CONNECT_TIMEOUT_S) -> None:
        self.address = address
        self.local_workers = parse_address(address)
        require_dask()
        self.join_timeout_s = join_timeout_s
        self.connect_timeout_s = connect_timeout_s
        self.run_id = uuid.uuid4().hex[:12]
        self.client: Any = None
        self._cluster: Any = None
        self._out: Any = None
        self._ctrl: dict[int, Any] = {}
        self._futures: dict[int, Any] = {}
        self._pinned: dict[int, str] = {}
        self._specs: dict[int, ShardSpec] = {}
        self._buffer: deque[Any] = deque()
        self._ended: dict[int, str] = {}
        self._next_workers_check = 0.0

    # ---- connection ---------------------------------------------------------------------------
    def connect(self) -> Any:
        """The synchronous Client (idempotent); a scheduler that does not answer is a one-line ClusterError."""
        if self.client is not None:
            return self.client
        _, dist = _dask()
        try:
            if self.local_workers is not None:
                self._cluster = start_local_cluster(self.local_workers)
                self.client = dist.Client(self._cluster, set_as_default=False)
            else:
                self.client = dist.Client(self.address, timeout=self.connect_timeout_s, set_as_default=False)
        except (OSError, TimeoutError, ValueError, RuntimeError) as exc:
            self._close_cluster()
            raise ClusterError(f"--cluster {self.address}: cannot reach the Dask scheduler: {_one_line(exc)}") from None
        return self.client

    def slots(self) -> list[str]:
        """One entry per worker thread, round-robin over workers (sorted): where shards go, in order."""
        by_addr: dict[str, int] = dict(self.connect().nthreads())
        out: list[str] = []
        for i in range(max(by_addr.values(), default=0)):
            out += [a for a in sorted(by_addr) if by_addr[a] > i]
        return out

    def default_workers(self) -> int:
        """How many shards the cluster can run at once (the supervisor's default worker count)."""
        n = len(self.slots())
        if n == 0:
            raise ClusterError(f"--cluster {self.address}: the scheduler has no workers")
        return n

    # ---- Backend protocol ---------------------------------------------------------------------
    def start(self, specs: list[ShardSpec]) -> dict[int, int]:
        _, dist = _dask()
        client = self.connect()
        slots = self.slots()
        if len(specs) > len(slots):
            raise ClusterError(
                f"--cluster {self.address}: {len(specs)} shards but only {len(slots)} worker threads; "
                f"pass --workers {len(slots)} or fewer, or add Dask workers", EXIT_USAGE)
        _check_reachable_target(specs, slots)
        self._out = dist.Queue(f"harness-{self.run_id}-out", client=client)
        for spec, addr in zip(specs, slots):
            wid = spec.worker_id
            ctrl = self._ctrl[wid] = dist.Queue(f"harness-{self.run_id}-ctrl-{wid}", client=client)
            ctrl.put(["claim"])  # taken once by the first attempt; a re-run finds none and refuses to run
            self._specs[wid] = spec
            self._pinned[wid] = addr
            self._futures[wid] = client.submit(
                run_shard, spec, self.run_id, self._out.name, ctrl.name,
                key=f"harness-shard-{self.run_id}-{wid}", pure=False, retries=0,
                workers=[addr], allow_other_workers=False,
            )
        return {wid: 0 for wid in self._futures}

    def get(self, timeout_s: float) -> Any:
        if not self._buffer and self._out is not None:
            raws = self._poll()
            if not raws and timeout_s > 0:
                # Poll, don't block: a blocking get that times out is logged as an error by the scheduler.
                time.sleep(timeout_s)
                raws = self._poll()
            self._buffer.extend(pickle.loads(raw) for raw in raws)
        return self._buffer.popleft() if self._buffer else None

    def send(self, worker_id: int, msg: Any) -> None:
        self._control(worker_id, ["msg", pickle.dumps(msg)])

    def exited(self) -> dict[int, str]:
        now = time.monotonic()
        check_workers = now >= self._next_workers_check
        alive: set[str] | None = None
        for wid, fut in self._futures.items():
            if wid in self._ended:
                continue
            how = self._how_ended(wid, fut)
            if how is None and check_workers:
                if alive is None:
                    self._next_workers_check = now + WORKERS_CHECK_EVERY_S
                    alive = self._alive_workers()
                if alive is not None and self._pinned[wid] not in alive:
                    how = f"Dask worker {self._pinned[wid]} left the cluster"
            if how is not None:
                self._ended[wid] = how
        return dict(self._ended)

    def terminate(self) -> None:
        for wid in self._futures:
            if wid not in self._ended:
                self._control(wid, ["terminate"])

    def close(self) -> None:
        try:
            if self._futures:
                self._join()
        finally:
            for q in [*self._ctrl.values(), *([self._out] if self._out is not None else [])]:
                try:
                    q.close()
                except Exception:  # noqa: BLE001 - best effort: the scheduler may be gone
                    pass
            self._ctrl.clear()
            self._out = None
            if self.client is not None:
                self.client.close()
                self.client = None
            self._close_cluster()

    # ---- helpers ------------------------------------------------------------------------------
    def pinned(self) -> dict[int, str]:
        """worker_id -> the Dask worker address its task is pinned to."""
        return dict(self._pinned)

    def _join(self) -> None:
        """Wait for the tasks to return; then SIGTERM their children; then cancel them (each relay notices and
        kills its child), and wait until the scheduler has nothing of ours left processing."""
        futures = list(self._futures.values())
        if not _until(lambda: all(f.done() for f in futures), self.join_timeout_s):
            self.terminate()
            _until(lambda: all(f.done() for f in futures), 3.0)
        self.exited()  # record how each task ended before its future is released
        running = [f for f in futures if not f.done()]
        if not running:
            return
        self.client.cancel(running)
        keys = {f.key for f in running}
        _until(lambda: not self._processing(keys), 5.0)

    def _processing(self, keys: set[Any]) -> bool:
        try:
            return bool({k for ks in self.client.processing().values() for k in ks} & keys)
        except (OSError, RuntimeError):  # pragma: no cover - scheduler gone
            return False

    def _poll(self) -> list[bytes]:
        try:
            return list(self._out.get(batch=True))
        except (OSError, RuntimeError):  # pragma: no cover - scheduler gone; exited() says what ended
            return []

    def _control(self, worker_id: int, item: list[Any]) -> None:
        q = self._ctrl.get(worker_id)
        if q is None or worker_id in self._ended:
            return
        try:
            q.put(item)
        except (OSError, RuntimeError):  # pragma: no cover - a worker that is gone is ignored
            pass

    def _how_ended(self, wid: int, fut: Any) -> str | None:
        status = fut.status
        addr = self._pinned[wid]
        if status == "pending":
            return None
        if status == "finished":
            return f"Dask task on {addr} returned"
        if status == "error":
            killed_worker = importlib.import_module("distributed.scheduler").KilledWorker
            try:
                exc = fut.exception(timeout=5)
            except Exception as e:  # noqa: BLE001 - the reason is best effort, the ending is certain
                exc = e
            if isinstance(exc, killed_worker):
                return f"Dask worker {addr} died (KilledWorker; the shard is not re-run)"
            return f"Dask task on {addr} failed: {_one_line(exc)}"
        return f"Dask task on {addr} {status}"

    def _alive_workers(self) -> set[str] | None:
        try:
            return set(self.client.nthreads())
        except (OSError, RuntimeError):  # pragma: no cover - scheduler gone
            return None

    def _close_cluster(self) -> None:
        if self._cluster is not None:
            self._cluster.close()
            self._cluster = None


def _is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _check_reachable_target(specs: list[ShardSpec], slots: list[str]) -> None:
    """Workers on other machines cannot reach a VTN on this machine's loopback (the embedded VTN's address)."""
    target_host = (urlsplit(specs[0].target).hostname or "") if specs else ""
    remote = sorted({a for a in slots if not _is_loopback(urlsplit(a).hostname or "")})
    if _is_loopback(target_host) and remote:
        raise ClusterError(
            f"--cluster: workers such as {remote[0]} cannot reach the target {specs[0].target} on this machine's "
            "loopback; pass --target with an address they can reach", EXIT_USAGE)


def _until(predicate: Any, timeout_s: float, poll_s: float = 0.05) -> bool:
    """Poll a predicate until it holds or the deadline passes (Dask's futures are watched by its own thread)."""
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() >= deadline:
            return False
        time.sleep(poll_s)
    return True


def _one_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return f"{type(exc).__name__}: {text[0]}" if text else type(exc).__name__


# ---- the Dask task: runs on a Dask worker, in one of its task threads -----------------------------------------
def run_shard(spec: ShardSpec, run_id: str, out_name: str, ctrl_name: str) -> str:
    """Run one shard in a child process and relay messages until it exits; an abnormal end raises ShardLost."""
    _, dist = _dask()
    out_q, ctrl_q = dist.Queue(out_name), dist.Queue(ctrl_name)
    try:
        claim = ctrl_q.get(timeout=CLAIM_TIMEOUT_S)
    except TimeoutError:
        claim = None
    if not isinstance(claim, (list, tuple)) or list(claim) != ["claim"]:  # msgpack may give a tuple back
        raise ShardLost(f"shard {spec.worker_id} already ran once; a lost shard is reported, never re-run")
    child = _Child(spec, run_id)
    worker = dist.get_worker()
    key = worker.get_current_task()
    try:
        return child.relay(out_q, ctrl_q, lambda: _is_cancelled(worker, key))
    finally:
        child.stop()


_CLOSING = ("closing", "closing_gracefully", "closed", "failed")


def _is_cancelled(worker: Any, key: Any) -> bool:
    try:
        ts = worker.state.tasks.get(key)
        return ts is None or ts.state in ("cancelled", "released", "forgotten") or worker.status.name in _CLOSING
    except Exception:  # noqa: BLE001 - Dask internals moved: rely on Stop and on pipe EOF instead
        return False


class _Child:
    """The shard's process: a fresh interpreter (as a spawn context gives) holding only its two pipe ends.

    A subprocess rather than multiprocessing: Dask's nanny runs workers as daemonic processes, which
    multiprocessing forbids to have children; and a fresh interpreter inherits nothing loop-bound."""

    def __init__(self, spec: ShardSpec, run_id: str) -> None:
        ctrl_r, ctrl_w = os.pipe()
        out_r, out_w = os.pipe()
        try:
            self.proc = subprocess.Popen(
                [sys.executable, "-c", CHILD_CODE, CHILD_FLAG, str(ctrl_r), str(out_w), f"{run_id}-{spec.worker_id}"],
                pass_fds=(ctrl_r, out_w), stdin=subprocess.DEVNULL,
            )
        finally:
            os.close(ctrl_r)  # the child holds its ends: EOF on ctrl tells it its relay is gone
            os.close(out_w)
        self.ctrl = Connection(ctrl_w, readable=False)
        self.out = Connection(out_r, writable=False)
        self.ctrl.send(spec)

    def relay(self, out_q: Any, ctrl_q: Any, is_cancelled: Any) -> str:
        next_liveness = time.monotonic() + LIVENESS_EVERY_S
        while True:
            if self.out.poll(RELAY_TICK_S):
                while True:
                    try:
                        out_q.put(self.out.recv_bytes())  # pickled by the child; relayed unopened
                    except EOFError:
                        return self._ended()
                    if not self.out.poll(0):
                        break
            for item in ctrl_q.get(batch=True):
                if item[0] == "msg":
                    self._send_bytes(item[1])
                elif item[0] == "terminate":
                    self.proc.terminate()
            if time.monotonic() >= next_liveness:
                next_liveness = time.monotonic() + LIVENESS_EVERY_S
                if is_cancelled():
                    self._close_ctrl()  # EOF: the child stops at once; its last messages are still relayed

    def _send_bytes(self, raw: bytes) -> None:
        if self.ctrl.closed:
            return
        try:
            self.ctrl.send_bytes(raw)
        except OSError:
            pass

    def _close_ctrl(self) -> None:
        if not self.ctrl.closed:
            self.ctrl.close()

    def _ended(self) -> str:
        try:
            code = self.proc.wait(CHILD_EXIT_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            code = self.proc.wait()
        if code != 0:
            raise ShardLost(f"harness worker process {self.proc.pid} exited with code {code}")
        return f"exited with code {code}"

    def stop(self) -> None:
        """Leave nothing running: EOF on control, then a bounded wait, then SIGKILL."""
        self._close_ctrl()
        if self.proc.poll() is None:
            try:
                self.proc.wait(CHILD_EXIT_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.out.close()


# ---- the child process entry ----------------------------------------------------------------------------------
_END = object()


class _PipeSink:
    """A worker's `out` over a pipe: put never blocks the worker's loop; a feeder thread pickles and writes, as
    multiprocessing.Queue's does for a local worker. The thread holds only plain messages."""

    def __init__(self, conn: Connection) -> None:
        self._conn = conn
        self._items: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread = threading.Thread(target=self._feed, name="harness-shard-feeder", daemon=True)
        self._thread.start()

    def put(self, item: Any) -> None:
        self._items.put(item)

    def _feed(self) -> None:
        while (item := self._items.get()) is not _END:
            try:
                self._conn.send(item)
            except OSError:  # the relay is gone: nobody is left to read
                return

    def close(self, timeout_s: float = CHILD_EXIT_TIMEOUT_S) -> None:
        self._items.put(_END)
        self._thread.join(timeout_s)
        self._conn.close()


def _child_main(ctrl_fd: int, out_fd: int) -> None:
    from harness.run import worker

    ctrl = Connection(ctrl_fd, writable=False)
    sink = _PipeSink(Connection(out_fd, readable=False))
    try:
        try:
            spec = ctrl.recv()
        except EOFError:
            return
        worker.main(spec, ctrl, sink)
    finally:
        sink.close()

