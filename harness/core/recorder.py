"""Per-window recording of operation outcomes in a worker, flushed as mergeable deltas.

Pure: callers pass the three instants of each operation (intended, sent, done) in seconds, and for a failure
the instants it was intended and failed, so every attempt's time to its outcome is kept (the attempts view).
Appending to lists is O(1) per operation; bucketing is vectorised once per flush.
"""

from __future__ import annotations

import numpy as np

from harness.core.histogram import Histogram
from harness.core.messages import ErrorDelta, OpDelta


class _OpBuffer:
    __slots__ = ("intended", "sent", "done", "errors", "failed_after")

    def __init__(self) -> None:
        self.intended: list[float] = []
        self.sent: list[float] = []
        self.done: list[float] = []
        self.errors = 0
        self.failed_after: list[float] = []  # failed attempts: failure instant - intended (s)


class Recorder:
    """Collects successes (latencies) and failures (classes) until flush() turns them into deltas."""

    def __init__(self) -> None:
        self._ops: dict[str, _OpBuffer] = {}
        self._errors: dict[tuple[str, str], list[object]] = {}  # (class, op) -> [count, example]
        self.total_ok = 0
        self.total_errors = 0

    def _buf(self, op: str) -> _OpBuffer:
        b = self._ops.get(op)
        if b is None:
            b = self._ops[op] = _OpBuffer()
        return b

    def ok(self, op: str, intended: float, sent: float, done: float) -> None:
        b = self._buf(op)
        b.intended.append(intended)
        b.sent.append(sent)
        b.done.append(done)
        self.total_ok += 1

    def fail(
        self, op: str, error_class: str, example: str, intended: float | None = None, done: float | None = None
    ) -> None:
        """A failed attempt; with its intended and failure instants it joins the attempts histogram too."""
        b = self._buf(op)
        b.errors += 1
        if intended is not None and done is not None:
            b.failed_after.append(done - intended)
        self.total_errors += 1
        e = self._errors.get((error_class, op))  # keyed by operation too: a class is counted where it happened
        if e is None:
            self._errors[(error_class, op)] = [1, example[:300]]
        else:
            e[0] = int(e[0]) + 1  # type: ignore[call-overload]

    def flush(self) -> tuple[dict[str, OpDelta], dict[str, ErrorDelta]]:
        ops: dict[str, OpDelta] = {}
        for name, b in self._ops.items():
            if not b.done and not b.errors:
                continue
            intended = np.asarray(b.intended)
            sent = np.asarray(b.sent)
            done = np.asarray(b.done)
            response, service, lag = Histogram.empty(), Histogram.empty(), Histogram.empty()
            response.record_s(done - intended)
            service.record_s(done - sent)
            lag.record_s(sent - intended)
            ops[name] = OpDelta(
                ok=len(b.done),
                errors=b.errors,
                response=response.to_sparse(),
                service=service.to_sparse(),
                lag=lag.to_sparse(),
                failed=Histogram.of_s(b.failed_after).to_sparse(),
            )
        by_class: dict[str, list[tuple[str, int, str]]] = {}
        for (cls, op), (count, example) in self._errors.items():
            by_class.setdefault(cls, []).append((op, int(count), str(example)))  # type: ignore[call-overload]
        errors = {}
        for cls, per_op in by_class.items():
            per_op.sort(key=lambda x: -x[1])
            errors[cls] = ErrorDelta(sum(n for _, n, _ in per_op), per_op[0][0], per_op[0][2], tuple(per_op))
        self._ops = {}
        self._errors = {}
        return ops, errors
