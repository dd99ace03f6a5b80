"""Where shards run: a Backend starts one worker per ShardSpec and carries messages both ways.

Edge. `LocalBackend` runs each shard in a child process from an explicit spawn context, with a control
pipe down (whose EOF tells a worker its supervisor is gone) and one results queue up. The Dask backend
(harness.cluster) implements the same protocol, so the supervisor's merge, view and results are the same.
"""

from __future__ import annotations

import multiprocessing as mp
import queue
from dataclasses import dataclass
from typing import Any, Protocol

from harness import worker as worker_mod
from harness.shard import ShardSpec


class Backend(Protocol):
    def start(self, specs: list[ShardSpec]) -> dict[int, int]:
        """Start one worker per spec; return worker_id -> pid (0 when not a local process)."""

    def get(self, timeout_s: float) -> Any:
        """The next message from any worker, or None after timeout_s (0: don't wait)."""

    def send(self, worker_id: int, msg: Any) -> None:
        """A control message to one worker; a worker that is gone is ignored."""

    def exited(self) -> dict[int, str]:
        """Workers whose process or task has ended, with how it ended (cumulative)."""

    def terminate(self) -> None:
        """Stop every worker now (second Ctrl-C)."""

    def close(self) -> None:
        """Join every worker; escalate to terminate/kill after a deadline; leave nothing running."""


@dataclass
class _Child:
    spec: ShardSpec
    process: Any
    ctrl: Any


class LocalBackend:
    def __init__(self, join_timeout_s: float = 5.0) -> None:
        self._ctx = mp.get_context("spawn")
        self._out: Any = None
        self._children: dict[int, _Child] = {}
        self.join_timeout_s = join_timeout_s

    def start(self, specs: list[ShardSpec]) -> dict[int, int]:
        self._out = self._ctx.Queue()
        for spec in specs:
            recv, send = self._ctx.Pipe(duplex=False)
            proc = self._ctx.Process(
                target=worker_mod.main, args=(spec, recv, self._out), name=f"harness-worker-{spec.worker_id}", daemon=False
            )
            proc.start()
            recv.close()  # the child holds its end; EOF tells it we are gone
            self._children[spec.worker_id] = _Child(spec, proc, send)
        return {wid: c.process.pid or 0 for wid, c in self._children.items()}

    def get(self, timeout_s: float) -> Any:
        if self._out is None:
            return None
        try:
            if timeout_s <= 0:
                return self._out.get_nowait()
            return self._out.get(timeout=timeout_s)
        except queue.Empty:
            return None
        except (EOFError, OSError):  # pragma: no cover - queue torn down
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
        import time

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
        if self._out is not None:
            self._out.close()
            self._out.join_thread()
            self._out = None
