"""Shards on a Dask cluster, the supervisor's side: the Backend that submits one long-running Dask task per shard
(`harness.run.shardtask`, which runs the shard in a fresh child process) and reads the messages it relays, so the
supervisor's merge, sinks and results are those of a local run.

Edge. Dask is imported lazily (the `cluster` extra). The supervisor side is a synchronous `distributed.Client`
whose IO thread is Dask's comm thread: no aiohttp/uvloop object of harness lives there, and it exists only with
--cluster. Every shard's event loop lives and dies in its own child process, exactly as a local worker's does.
"""

from __future__ import annotations

import importlib.util
import ipaddress
import pickle
import re
import signal
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from harness.core.exits import EXIT_USAGE, ClusterError
from harness.core.shard import ShardSpec
from harness.run.backend import Capabilities
from harness.run.shardtask import CHILD_FLAG as CHILD_FLAG  # the mark of a shard's child process, for `ps` and tests
from harness.run.shardtask import dask_modules, run_shard

INSTALL_HINT = "pip install 'harness[cluster]'"
CONNECT_TIMEOUT_S = 10.0
WORKERS_CHECK_EVERY_S = 2.0  # how often the supervisor asks the scheduler which workers are still there
_ADDRESS = re.compile(r"^(tcp|tls|inproc|ucx|ws|wss)://[^\s/]+$")
_LOCAL = re.compile(r"^local:(\d+)$")
_DASK_MODULE = "distributed"


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
    dask, dist = dask_modules()
    with _sigint_blocked(), dask.config.set({"distributed.scheduler.allowed-failures": 0}):
        return dist.LocalCluster(
            n_workers=n_workers, threads_per_worker=1, processes=True, host="127.0.0.1", dashboard_address=None,
            scheduler_kwargs={"dashboard_address": "127.0.0.1:0"},
        )


class DaskBackend:
    """The Backend protocol (harness.run.backend) over a Dask cluster: one pinned, never re-run task per shard."""

    # Nodes have their own port and file limits; a Dask task cannot be stopped alone (a hung shard is reported lost).
    capabilities = Capabilities(runs_on_this_host=False, stops_one_worker=False)

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
        _, dist = dask_modules()
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

    def default_workers(self, embedded_vtn: bool = False) -> int:
        """How many shards the cluster can run at once: one per worker thread, wherever the VTN runs."""
        n = len(self.slots())
        if n == 0:
            raise ClusterError(f"--cluster {self.address}: the scheduler has no workers")
        return n

    # ---- Backend protocol ---------------------------------------------------------------------
    def start(self, specs: list[ShardSpec]) -> dict[int, int]:
        _, dist = dask_modules()
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

    def stop_worker(self, worker_id: int, *, force: bool) -> None:
        raise NotImplementedError("a Dask task cannot be stopped alone (capabilities.stops_one_worker is False)")

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
