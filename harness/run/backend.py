"""Where shards run: a Backend starts one worker per ShardSpec and carries messages both ways.

Edge. `LocalBackend` runs each shard in a child process from an explicit spawn context, with a control
pipe down (whose EOF tells a worker its supervisor is gone) and one results queue up. The Dask backend
(harness.run.cluster) implements the same protocol, so the supervisor's merge, view and results are the same.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import queue
import time
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Protocol

from harness.core.shard import ShardSpec
from harness.run import worker as worker_mod


@dataclass(frozen=True)
class Capabilities:
    """What a backend can do, declared instead of probed."""

    runs_on_this_host: bool  # workers share this machine's ports and open-file limits (checked before a run)
    stops_one_worker: bool  # stop_worker() can stop a single hung worker


class Backend(Protocol):
    capabilities: Capabilities

    def default_workers(self, embedded_vtn: bool) -> int:
        """How many workers a run gets when the profile names no number (embedded_vtn: it runs on this machine)."""

    def start(self, specs: list[ShardSpec]) -> dict[int, int]:
        """Start one worker per spec; return worker_id -> pid (0 when not a local process)."""

    def get(self, timeout_s: float) -> Any:
        """The next message from any worker, or None after timeout_s (0: don't wait)."""

    def send(self, worker_id: int, msg: Any) -> None:
        """A control message to one worker; a worker that is gone is ignored."""

    def exited(self) -> dict[int, str]:
        """Workers whose process or task has ended, with how it ended (cumulative)."""

    def stop_worker(self, worker_id: int, *, force: bool) -> None:
        """Stop one hung worker: SIGTERM, or SIGKILL with force (only when capabilities.stops_one_worker)."""

    def terminate(self) -> None:
        """Stop every worker now (second Ctrl-C)."""

    def close(self) -> None:
        """Join every worker; escalate to terminate/kill after a deadline; leave nothing running."""


@dataclass
class _Child:
    spec: ShardSpec
    process: Any
    ctrl: Any
    out: Any  # this worker's own results queue


class LocalBackend:
    capabilities = Capabilities(runs_on_this_host=True, stops_one_worker=True)

    def __init__(self, join_timeout_s: float = 5.0) -> None:
        self._ctx = mp.get_context("spawn")
        self._children: dict[int, _Child] = {}
        self.join_timeout_s = join_timeout_s

    def start(self, specs: list[ShardSpec]) -> dict[int, int]:
        for spec in specs:
            recv, send = self._ctx.Pipe(duplex=False)
            # One results queue per worker: a worker SIGKILLed mid-write can leave a shared queue's write lock
            # held or its stream torn, silencing every other worker; its own queue dies with it alone.
            out: Any = self._ctx.Queue()
            proc = self._ctx.Process(
                target=worker_mod.main, args=(spec, recv, out), name=f"harness-worker-{spec.worker_id}", daemon=False
            )
            proc.start()
            recv.close()  # the child holds its end; EOF tells it we are gone
            # The supervisor only reads: without its copy of the write end, a message torn by a worker's death
            # reads as EOF instead of blocking forever.
            out._writer.close()
            self._children[spec.worker_id] = _Child(spec, proc, send, out)
        return {wid: c.process.pid or 0 for wid, c in self._children.items()}

    def default_workers(self, embedded_vtn: bool) -> int:
        # One worker per core; with the embedded VTN on this machine, leave it a core of its own.
        return max(1, (os.cpu_count() or 1) - (1 if embedded_vtn else 0))

    def get(self, timeout_s: float) -> Any:
        queues = [c.out for c in self._children.values() if c.out is not None]
        if not queues:
            return None
        msg = self._take(queues)
        if msg is not None or timeout_s <= 0:
            return msg
        # Wait on every queue's pipe at once (Queue keeps its read end as _reader; stable since Python 3.0).
        wait([q._reader for q in queues], timeout_s)
        return self._take(queues)

    def _take(self, queues: list[Any]) -> Any:
        # Rotate so that one busy worker cannot starve the others' messages.
        self._turn = (getattr(self, "_turn", -1) + 1) % len(queues)
        for q in queues[self._turn :] + queues[: self._turn]:
            try:
                return q.get_nowait()
            except queue.Empty:
                continue
            except (EOFError, OSError):  # a queue torn down with its killed worker
                continue
        return None

    def send(self, worker_id: int, msg: Any) -> None:
        child = self._children.get(worker_id)
        if child is None or child.process.exitcode is not None:
            return
        try:
            child.ctrl.send(msg)
        except (BrokenPipeError, OSError):
            pass

    def exited(self) -> dict[int, str]:
        return {
            wid: f"exited with code {c.process.exitcode}"
            for wid, c in self._children.items()
            if c.process.exitcode is not None
        }

    def pids(self) -> dict[int, int]:
        return {wid: c.process.pid or 0 for wid, c in self._children.items()}

    def kill(self, worker_id: int) -> None:
        """Test hook: SIGKILL one worker, as the OOM killer would."""
        self._children[worker_id].process.kill()

    def stop_worker(self, worker_id: int, *, force: bool) -> None:
        """Stop one hung worker: SIGTERM, or SIGKILL with force (a stopped or stuck process cannot refuse it)."""
        child = self._children.get(worker_id)
        if child is not None and child.process.exitcode is None:
            if force:
                child.process.kill()
            else:
                child.process.terminate()

    def terminate(self) -> None:
        for c in self._children.values():
            if c.process.is_alive():
                c.process.terminate()

    def close(self) -> None:
        deadline = time.monotonic() + self.join_timeout_s
        for c in self._children.values():
            c.process.join(max(0.0, deadline - time.monotonic()))
        for c in self._children.values():
            if c.process.is_alive():
                c.process.terminate()
                c.process.join(2.0)
            if c.process.is_alive():
                c.process.kill()
                c.process.join(2.0)
            c.ctrl.close()
        for c in self._children.values():
            if c.out is not None:
                c.out.close()
                c.out.join_thread()
                c.out = None
