"""The Dask side of a cluster run: the task that runs one shard in a fresh child process on a Dask worker and
relays its pickled messages through scheduler queues, and the child's entry.

Edge. Dask is imported lazily (the `cluster` extra). Every shard's event loop lives and dies in its own child
process, exactly as a local worker's does; the task thread and the feeder thread hold only plain bytes.
"""

from __future__ import annotations

import importlib
import os
import queue
import subprocess
import sys
import threading
import time
from multiprocessing.connection import Connection
from typing import Any

from harness.core.shard import ShardSpec

CLAIM_TIMEOUT_S = 5.0
RELAY_TICK_S = 0.2  # the relay waits this long on its child's pipe, then looks at the control queue
LIVENESS_EVERY_S = 1.0  # how often the relay asks whether its task was cancelled
CHILD_EXIT_TIMEOUT_S = 5.0
CHILD_FLAG = "--harness-shard-child"  # marks the process in `ps`, with the run id and worker id after the fds
# Ctrl-C belongs to the supervisor: the child ignores SIGINT before importing anything.
CHILD_CODE = (
    "import signal, sys; signal.signal(signal.SIGINT, signal.SIG_IGN); "
    "from harness.run.shardtask import _child_main; _child_main(int(sys.argv[2]), int(sys.argv[3]))"
)


class ShardLost(RuntimeError):
    """Raised inside a Dask task so that its future ends in error and the supervisor reports the shard."""


def dask_modules() -> tuple[Any, Any]:
    """dask and distributed, imported on first use (the optional `cluster` extra; untyped, hence Any)."""
    return importlib.import_module("dask"), importlib.import_module("distributed")


# ---- the Dask task: runs on a Dask worker, in one of its task threads -----------------------------------------
def run_shard(spec: ShardSpec, run_id: str, out_name: str, ctrl_name: str) -> str:
    """Run one shard in a child process and relay messages until it exits; an abnormal end raises ShardLost."""
    _, dist = dask_modules()
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

