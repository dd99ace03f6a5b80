"""Delivery audit, the pure part: the id every report carries, the sender's ledger of which were acknowledged,
and the classification of what a VTN holds against that ledger.

Pure (stdlib + numpy). A report's id is `h:<run tag>:<VEN index>:<sequence>`, appended to its reportName; the
sequence counts the VEN's report POSTs from 0, so the ids follow from the run and the schedule alone. A VEN sends
one request at a time, so the worker's book keeps one in-flight slot per VEN and a list of the unacknowledged:
its ledger travels once, in the worker's final delta, as arrays (never a message per request).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

KEY_PREFIX = "h:"
_KEY = re.compile(r"#h:([0-9a-f]{1,16}):(\d{1,10}):(\d{1,10})$")
SEQ_BITS = 32  # a key packs (VEN index, sequence) into one int64
ABANDONED = "abandoned"  # still in flight when the worker stopped
NAME_FIELDS = ("reportName", "report_name")  # where dialects put a report's name (camelCase, snake_case)
CATEGORIES = ("acknowledged_stored", "unacknowledged_stored", "acknowledged_missing", "unacknowledged_missing")
EXAMPLES = 5


def run_tag(run_id: str) -> str:
    """A short tag for a run (its folder name): 8 hex digits, the same for the same run id."""
    return hashlib.sha1(run_id.encode()).hexdigest()[:8]


def report_key(tag: str, ven_index: int, seq: int) -> str:
    return f"{KEY_PREFIX}{tag}:{ven_index}:{seq}"


def parse_key(name: object) -> tuple[str, int, int] | None:
    """(run tag, VEN index, sequence) from a reportName that ends with `#h:...`; None for any other name."""
    if not isinstance(name, str):
        return None
    m = _KEY.search(name)
    if m is None:
        return None
    return m.group(1), int(m.group(2)), int(m.group(3))


def tag_body(body: object, key: str) -> bool:
    """Append ` #<key>` to the report body's name (whichever name field its dialect uses); False: no name field."""
    if not isinstance(body, dict):
        return False
    for name_field in NAME_FIELDS:
        if name_field in body:
            body[name_field] = f"{body[name_field]} #{key}"
            return True
    return False


def pack(ven: npt.NDArray[np.int64], seq: npt.NDArray[np.int64]) -> npt.NDArray[np.int64]:
    return (np.asarray(ven, dtype=np.int64) << SEQ_BITS) | np.asarray(seq, dtype=np.int64)


# ---- the sender's side ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ReportLedger:
    """One worker's reports: `sent[row]` ids 0..sent-1 were given to VEN ven_start + row; every one of them was
    acknowledged except those listed (row, seq, failure class by code into `classes`)."""

    ven_start: int
    sent: npt.NDArray[np.int32]
    unacked_rows: npt.NDArray[np.int32]
    unacked_seqs: npt.NDArray[np.int32]
    unacked_codes: npt.NDArray[np.int16]
    classes: tuple[str, ...]

    @property
    def n_sent(self) -> int:
        return int(self.sent.sum())


class LedgerBook:
    """The worker's running book: `open` before a report is sent, `settle` when its outcome is known; a report
    still open at the end (cancelled in flight) is unacknowledged as `abandoned`."""

    def __init__(self, n_rows: int) -> None:
        self.sent = np.zeros(n_rows, dtype=np.int32)
        self.open_seq = np.full(n_rows, -1, dtype=np.int64)
        self._rows: list[int] = []
        self._seqs: list[int] = []
        self._codes: list[int] = []
        self._classes: dict[str, int] = {}

    def open(self, row: int) -> int:
        """The next sequence of this VEN, now in flight."""
        seq = int(self.sent[row])
        self.sent[row] = seq + 1
        self.open_seq[row] = seq
        return seq

    def settle(self, row: int, acknowledged: bool, error_class: str = "") -> None:
        seq = int(self.open_seq[row])
        if seq < 0:
            return
        self.open_seq[row] = -1
        if not acknowledged:
            self._unacked(row, seq, error_class or "failed")

    def _unacked(self, row: int, seq: int, error_class: str) -> None:
        code = self._classes.setdefault(error_class, len(self._classes))
        self._rows.append(row)
        self._seqs.append(seq)
        self._codes.append(code)

    def ledger(self, ven_start: int) -> ReportLedger:
        """The book as it stands; reports still open are counted unacknowledged (abandoned), once."""
        for row in np.flatnonzero(self.open_seq >= 0).tolist():
            self._unacked(row, int(self.open_seq[row]), ABANDONED)
            self.open_seq[row] = -1
        return ReportLedger(
            ven_start,
            self.sent.copy(),
            np.asarray(self._rows, dtype=np.int32),
            np.asarray(self._seqs, dtype=np.int32),
            np.asarray(self._codes, dtype=np.int16),
            tuple(sorted(self._classes, key=self._classes.__getitem__)),
        )


@dataclass(frozen=True)
class RunLedger:
    """Every worker's ledger on global VEN indices. `known[v]` is False for VENs whose worker sent none (lost)."""

    sent: npt.NDArray[np.int32]
    known: npt.NDArray[np.bool_]
    unacked_keys: npt.NDArray[np.int64]
    unacked_class: npt.NDArray[np.int16]
    classes: tuple[str, ...]

    @classmethod
    def merge(cls, ledgers: Iterable[ReportLedger], n_vens: int) -> RunLedger:
        sent = np.zeros(n_vens, dtype=np.int32)
        known = np.zeros(n_vens, dtype=bool)
        classes: dict[str, int] = {}
        keys: list[npt.NDArray[np.int64]] = []
        codes: list[npt.NDArray[np.int16]] = []
        for led in ledgers:
            lo, hi = led.ven_start, led.ven_start + len(led.sent)
            sent[lo:hi] = led.sent
            known[lo:hi] = True
            remap = np.asarray([classes.setdefault(c, len(classes)) for c in led.classes], dtype=np.int16)
            keys.append(pack(led.unacked_rows.astype(np.int64) + lo, led.unacked_seqs.astype(np.int64)))
            codes.append(remap[led.unacked_codes] if len(led.unacked_codes) else np.zeros(0, dtype=np.int16))
        return cls(sent, known, _cat(keys, np.int64), _cat(codes, np.int16),
                   tuple(sorted(classes, key=classes.__getitem__)))

    def to_arrays(self) -> dict[str, npt.NDArray[Any]]:
        return {"sent": self.sent, "known": self.known, "unacked_keys": self.unacked_keys,
                "unacked_class": self.unacked_class, "classes": np.asarray(self.classes, dtype=str)}

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, npt.NDArray[Any]]) -> RunLedger:
        return cls(np.asarray(arrays["sent"], dtype=np.int32), np.asarray(arrays["known"], dtype=bool),
                   np.asarray(arrays["unacked_keys"], dtype=np.int64), np.asarray(arrays["unacked_class"], dtype=np.int16),
                   tuple(str(c) for c in arrays["classes"]))

    @property
    def n_sent(self) -> int:
        return int(self.sent.sum())

    def sent_keys(self) -> npt.NDArray[np.int64]:
        """Every report id the run gave out, packed, VEN by VEN."""
        vens = np.repeat(np.arange(len(self.sent), dtype=np.int64), self.sent)
        starts = np.cumsum(self.sent, dtype=np.int64) - self.sent
        seqs = np.arange(len(vens), dtype=np.int64) - np.repeat(starts, self.sent)
        return pack(vens, seqs)


def _cat(parts: list[npt.NDArray[Any]], dtype: type) -> npt.NDArray[Any]:
    return np.concatenate(parts).astype(dtype) if parts else np.zeros(0, dtype=dtype)


# ---- what the VTN holds, against the ledger -----------------------------------------------------------


@dataclass
class AuditResult:
    """summary.json `audit`. The four categories partition the reports the run sent; `stored_twice` (ids held
    more than once) and `unexpected` (ids of this run it never gave out, or of a VEN whose worker was lost) come on
    top. Only `acknowledged_missing` fails a run: the VTN said 201 and does not hold the report."""

    sent: int
    counts: dict[str, int]
    unacknowledged_stored_by_class: dict[str, int]
    stored_twice: int
    extra_copies: int
    unexpected: int
    unknown_sender: int  # VENs of lost workers: what they sent is not known
    examples: dict[str, list[str]] = field(default_factory=dict)

    @property
    def lost(self) -> int:
        return self.counts["acknowledged_missing"]

    def to_json(self) -> dict[str, Any]:
        return {
            "sent": self.sent,
            **self.counts,
            "unacknowledged_stored_by_class": dict(sorted(self.unacknowledged_stored_by_class.items())),
            "stored_twice": self.stored_twice,
            "extra_copies": self.extra_copies,
            "unexpected": self.unexpected,
            "unknown_sender_vens": self.unknown_sender,
            "examples": self.examples,
            "passed": self.lost == 0,
        }


def classify(ledger: RunLedger, found: npt.NDArray[np.int64], tag: str) -> AuditResult:
    """Judge the ids read back from the VTN (`found`, packed, one entry per stored copy) against the ledger."""
    sent = ledger.sent_keys()
    uniq, copies = np.unique(np.asarray(found, dtype=np.int64), return_counts=True)
    stored = np.isin(sent, uniq)
    unacked = np.isin(sent, ledger.unacked_keys)
    masks = {
        "acknowledged_stored": ~unacked & stored,
        "unacknowledged_stored": unacked & stored,
        "acknowledged_missing": ~unacked & ~stored,
        "unacknowledged_missing": unacked & ~stored,
    }
    by_class: dict[str, int] = {}
    stored_unacked = ledger.unacked_keys[np.isin(ledger.unacked_keys, uniq)]
    if len(stored_unacked):
        codes = ledger.unacked_class[np.isin(ledger.unacked_keys, stored_unacked)]
        for code, n in zip(*np.unique(codes, return_counts=True)):
            by_class[ledger.classes[int(code)]] = int(n)
    expected = np.isin(uniq, sent)
    twice = copies > 1

    def names(keys: npt.NDArray[np.int64]) -> list[str]:
        return [report_key(tag, int(k) >> SEQ_BITS, int(k) & ((1 << SEQ_BITS) - 1)) for k in keys[:EXAMPLES]]

    examples = {name: names(sent[m]) for name, m in masks.items() if name != "acknowledged_stored" and m.any()}
    if twice.any():
        examples["stored_twice"] = names(uniq[twice])
    return AuditResult(
        sent=len(sent),
        counts={name: int(m.sum()) for name, m in masks.items()},
        unacknowledged_stored_by_class=by_class,
        stored_twice=int(twice.sum()),
        extra_copies=int((copies[twice] - 1).sum()),
        unexpected=int((~expected).sum()),
        unknown_sender=int((~ledger.known).sum()),
        examples=examples,
    )
