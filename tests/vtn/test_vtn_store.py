"""The SQLite store: group commit, durability of acknowledged writes, ids across restarts."""

from __future__ import annotations

import asyncio
import sqlite3
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import pytest

from harness.vtn import VtnConfig
from harness.vtn.store import PROGRAMS, REPORTS, VENS, Conflict, Store


async def test_writes_share_a_commit_and_sync_waits_for_it(tmp_path: Path) -> None:
    """Writes in one batch are invisible to other connections until the commit that sync() waits for."""
    db = str(tmp_path / "s.sqlite")
    store = Store(db, commit_interval_s=0.05, commit_max_writes=1000)
    try:
        for i in range(10):
            seq, oid = store.new_id(REPORTS)
            store.insert(REPORTS, seq, oid, "ven-a", "2026-01-01T00:00:00.000Z",
                         {"program_id": "prg-1", "event_id": "evt-1", "client_name": "a"}, b"{}")
        with sqlite3.connect(db) as other:
            assert other.execute("SELECT count(*) FROM reports").fetchone() == (0,)
        await asyncio.gather(*(store.sync() for _ in range(10)))
        with sqlite3.connect(db) as other:
            assert other.execute("SELECT count(*) FROM reports").fetchone() == (10,)
        assert (store.commits, store.committed_writes) == (1, 10)
        assert store.count(REPORTS) == 10
    finally:
        store.close()


async def test_batch_commits_early_at_max_writes(tmp_path: Path) -> None:
    """Reaching commit_max_writes commits at once, without waiting for the timer."""
    store = Store(str(tmp_path / "s.sqlite"), commit_interval_s=1.0, commit_max_writes=3)
    try:
        for i in range(3):
            seq, oid = store.new_id(VENS)
            store.insert(VENS, seq, oid, "ven-a", "t", {"ven_name": f"v{i}"}, b"{}")
        assert store.commits == 1
        await asyncio.wait_for(store.sync(), 0.5)
    finally:
        store.close()


async def test_unique_names_conflict_and_ids_survive_restart(tmp_path: Path) -> None:
    """A duplicate programName is a Conflict; a reopened store continues ids after the highest ever used."""
    db = str(tmp_path / "s.sqlite")
    store = Store(db)
    seq, oid = store.new_id(PROGRAMS)
    store.insert(PROGRAMS, seq, oid, "bl", "t", {"program_name": "p"}, b'{"id":"prg-1"}')
    seq2, oid2 = store.new_id(PROGRAMS)
    with pytest.raises(Conflict):
        store.insert(PROGRAMS, seq2, oid2, "bl", "t", {"program_name": "p"}, b"{}")
    seq3, oid3 = store.new_id(PROGRAMS)
    store.insert(PROGRAMS, seq3, oid3, "bl", "t", {"program_name": "q"}, b"{}")
    store.delete(PROGRAMS, seq3)
    await store.sync()
    store.close()
    again = Store(db)
    try:
        assert again.new_id(PROGRAMS) == (4, "prg-4")
        assert again.program_exists("prg-1") and not again.program_exists("prg-3")
        row = again.get(PROGRAMS, "prg-1")
        assert row is not None and row.body == b'{"id":"prg-1"}'
        assert again.get(PROGRAMS, "prg-01") is None and again.get(PROGRAMS, "evt-1") is None
    finally:
        again.close()


async def test_report_201_is_already_committed(config: VtnConfig, kit: SimpleNamespace) -> None:
    """Even with a long commit interval, a report's 201 arrives only once another connection can read it."""
    async with kit.vtn_server(replace(config, commit_interval_s=0.2)) as c:
        program_id, event_id = await kit.program_and_event(c)
        ven = await c.token("ven-a")
        replies = await asyncio.gather(*(c.call("POST", "/reports", ven, json=kit.report_body(program_id, event_id))
                                         for _ in range(5)))
        assert [r.status for r in replies] == [201] * 5
        with sqlite3.connect(config.db_path) as other:
            ids = {r[0] for r in other.execute("SELECT id FROM reports")}
        assert ids == {r.body["id"] for r in replies}
