"""Delivery audit core: report ids, the worker's ledger, its merge, and the classification of what a VTN holds."""

from __future__ import annotations

import numpy as np

from harness.core.delivery import (
    LedgerBook,
    RunLedger,
    classify,
    pack,
    parse_key,
    report_key,
    run_tag,
    tag_body,
)


def test_report_ids_round_trip_through_a_report_name() -> None:
    """A tagged reportName gives back (run tag, VEN index, sequence); other names give None."""
    tag = run_tag("20261203T101010Z-smoke")
    assert tag == run_tag("20261203T101010Z-smoke") and len(tag) == 8
    body = {"reportName": "ven-7 telemetry"}
    assert tag_body(body, report_key(tag, 7, 12))
    assert body["reportName"] == f"ven-7 telemetry #h:{tag}:7:12"
    assert parse_key(body["reportName"]) == (tag, 7, 12)
    snake = {"report_name": "x"}
    assert tag_body(snake, "h:ab:1:2") and parse_key(snake["report_name"]) == ("ab", 1, 2)
    assert not tag_body({"name": "x"}, "h:ab:1:2")
    assert parse_key("ven-7 telemetry") is None and parse_key(None) is None


def test_book_counts_sent_and_keeps_only_the_unacknowledged() -> None:
    """3 reports for row 0 (the middle one timed out), 1 for row 1 still in flight at the end: abandoned."""
    book = LedgerBook(2)
    for ok in (True, False, True):
        book.open(0)
        book.settle(0, ok, "read_timeout")
    assert book.open(1) == 0
    led = book.ledger(ven_start=10)
    assert led.sent.tolist() == [3, 1] and led.n_sent == 4
    got = {(int(r), int(s), led.classes[int(c)]) for r, s, c in zip(led.unacked_rows, led.unacked_seqs, led.unacked_codes)}
    assert got == {(0, 1, "read_timeout"), (1, 0, "abandoned")}


def test_classification_partitions_what_was_sent_and_counts_duplicates_apart() -> None:
    """Two workers' ledgers merged; the VTN holds some twice, lost one it acknowledged, kept one unacknowledged."""
    a, b = LedgerBook(2), LedgerBook(1)
    for row, outcomes in ((0, [True, True, False]), (1, [True, False])):
        for ok in outcomes:
            a.open(row)
            a.settle(row, ok, "reset")
    b.open(0)
    b.settle(0, True)
    run = RunLedger.merge([a.ledger(0), b.ledger(2)], n_vens=4)  # VEN 3: its worker was lost
    assert run.n_sent == 6 and run.known.tolist() == [True, True, True, False]
    again = RunLedger.from_arrays(run.to_arrays())
    assert again.sent.tolist() == run.sent.tolist() and again.classes == run.classes
    # Sent: (0,0)a (0,1)a (0,2)u (1,0)a (1,1)u (2,0)a. Held: (0,0) twice, (0,2) [unacked, stored], (1,0), (2,0);
    # missing: (0,1) acknowledged (lost!) and (1,1) unacknowledged; (3,0) is a VEN whose worker was lost.
    found = pack(np.array([0, 0, 0, 1, 2, 3]), np.array([0, 0, 2, 0, 0, 0]))
    result = classify(again, found, "abcd1234")
    assert result.counts == {"acknowledged_stored": 3, "unacknowledged_stored": 1, "acknowledged_missing": 1,
                             "unacknowledged_missing": 1}
    assert result.lost == 1 and result.sent == 6
    assert result.unacknowledged_stored_by_class == {"reset": 1}
    assert (result.stored_twice, result.extra_copies, result.unexpected, result.unknown_sender) == (1, 1, 1, 1)
    assert result.examples["acknowledged_missing"] == ["h:abcd1234:0:1"]
    assert result.to_json()["passed"] is False
