"""SQLite store of the embedded VTN: every object as its full JSON plus indexed columns, group-committed.

One connection, used only from the event loop that opened it. Writes join the open transaction and a
loop timer commits it; a writer's response waits on `sync()`, so nothing acknowledged is ever uncommitted.
"""

from __future__ import annotations

import asyncio
import re
import sqlite3
from dataclasses import dataclass
from typing import Collection, Iterable, Mapping

SCHEMA_VERSION = 1


@dataclass(frozen=True)
class Table:
    """One object type: its table, its id prefix, and the columns it is filtered or constrained on."""

    name: str
    prefix: str
    columns: tuple[str, ...]
    ddl: str  # constraints and indexes beyond the common columns
    role: str = ""  # "program" and "event" tables keep id caches; a "ven" table's deletes cascade to `children`
    children: str = ""


PROGRAMS = Table("programs", "prg", ("program_name",), "CREATE UNIQUE INDEX IF NOT EXISTS programs_name ON programs(program_name);",
                 role="program")
EVENTS = Table("events", "evt", ("program_id",), "CREATE INDEX IF NOT EXISTS events_program ON events(program_id);",
               role="event")
VENS = Table(
    "vens", "ven", ("ven_name",),
    "CREATE UNIQUE INDEX IF NOT EXISTS vens_name ON vens(ven_name);"
    "CREATE INDEX IF NOT EXISTS vens_owner ON vens(owner);",
    role="ven", children="resources",
)
RESOURCES = Table(
    "resources", "res", ("ven_id", "resource_name"),
    "CREATE UNIQUE INDEX IF NOT EXISTS resources_name ON resources(ven_id, resource_name);",
)
REPORTS = Table(
    "reports", "rpt", ("program_id", "event_id", "client_name"),
    "CREATE INDEX IF NOT EXISTS reports_owner ON reports(owner);"
    "CREATE INDEX IF NOT EXISTS reports_event ON reports(event_id);",
)
SUBSCRIPTIONS = Table(
    "subscriptions", "sub", ("program_id", "client_name"),
    "CREATE INDEX IF NOT EXISTS subscriptions_owner ON subscriptions(owner);",
)

# OpenADR 3.1.0 objects live in tables of their own: the two versions' shapes differ (targets are strings,
# reports carry no programID, resources are top-level) and a real VTN serves one version per base path.
# The owner is the object's clientID; `targets` holds the JSON array of target strings ('' when untargeted).
def _v31(t: Table, *, targets: bool = True, ddl: str = "") -> Table:
    """The 3.1.0 twin of a 3.0 table: `31` on its name (and its index names), a `targets` column where 3.1.0
    objects carry targets, and `ddl` added to the 3.0 constraints."""
    name = t.name + "31"
    return Table(name, t.prefix, t.columns + (("targets",) if targets else ()),
                 re.sub(rf"\b{t.name}(?=[_(])", name, t.ddl) + ddl, role=t.role,
                 children=t.children and t.children + "31")


PROGRAMS31 = _v31(PROGRAMS)
EVENTS31 = _v31(EVENTS)
VENS31 = _v31(VENS)
RESOURCES31 = _v31(RESOURCES, ddl="CREATE INDEX IF NOT EXISTS resources31_owner ON resources31(owner);")
REPORTS31 = _v31(REPORTS, targets=False)
SUBSCRIPTIONS31 = _v31(SUBSCRIPTIONS, targets=False)
TABLES = (PROGRAMS, EVENTS, VENS, RESOURCES, REPORTS, SUBSCRIPTIONS,
          PROGRAMS31, EVENTS31, VENS31, RESOURCES31, REPORTS31, SUBSCRIPTIONS31)
_BY_NAME = {t.name: t for t in TABLES}


class Conflict(Exception):
    """A uniqueness constraint (programName, venName, resourceName within its VEN) was violated."""


@dataclass(frozen=True)
class Row:
    seq: int
    id: str
    owner: str
    created: str
    body: bytes


class Store:
    """Open with `Store(path, ...)` inside the running loop; `close()` in that same loop."""

    def __init__(self, path: str, *, commit_interval_s: float = 0.0, commit_max_writes: int = 512) -> None:
        self._loop = asyncio.get_running_loop()
        self._interval_s = commit_interval_s
        self._max_writes = commit_max_writes
        self._conn = sqlite3.connect(path, isolation_level=None, cached_statements=256)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute("PRAGMA temp_store=MEMORY")
        self._create_schema()
        self._seq = {t.name: 0 for t in TABLES}
        for name, seq in self._conn.execute("SELECT name, seq FROM sqlite_sequence"):
            if name in self._seq:
                self._seq[name] = int(seq)
        self._program_ids: dict[str, set[str]] = {}  # program table name -> ids
        self._event_programs: dict[str, dict[str, str]] = {}  # event table name -> event id -> program id
        self._counts: dict[str, int] = {}
        self._load_caches()
        self._batch: asyncio.Future[None] | None = None
        self._timer: asyncio.TimerHandle | asyncio.Handle | None = None
        self._pending = 0
        self.commits = 0
        self.committed_writes = 0

    def _create_schema(self) -> None:
        script = ["BEGIN;"]
        for t in TABLES:
            cols = "".join(f", {c} TEXT NOT NULL" for c in t.columns)
            script.append(
                f"CREATE TABLE IF NOT EXISTS {t.name} (seq INTEGER PRIMARY KEY AUTOINCREMENT, id TEXT NOT NULL, "
                f"owner TEXT NOT NULL, created TEXT NOT NULL, modified TEXT NOT NULL{cols}, body BLOB NOT NULL);"
            )
            script.append(t.ddl)
        script.append(f"PRAGMA user_version={SCHEMA_VERSION};")
        script.append("COMMIT;")
        self._conn.executescript("".join(script))

    def _load_caches(self) -> None:
        """Program ids, each event's program (checked on every report) and row counts (so /_harness/stats
        stays O(1) on a store of millions of reports), from what is committed."""
        self._program_ids = {t.name: {r[0] for r in self._conn.execute(f"SELECT id FROM {t.name}")}
                             for t in TABLES if t.role == "program"}
        self._event_programs = {t.name: dict(self._conn.execute(f"SELECT id, program_id FROM {t.name}").fetchall())
                                for t in TABLES if t.role == "event"}
        self._counts = {t.name: int(self._conn.execute(f"SELECT count(*) FROM {t.name}").fetchone()[0]) for t in TABLES}

    # ---- ids and caches -------------------------------------------------------------------------------

    def new_id(self, table: Table) -> tuple[int, str]:
        """A fresh (seq, id); ids are never reused, across restarts and deletes included."""
        self._seq[table.name] += 1
        seq = self._seq[table.name]
        return seq, f"{table.prefix}-{seq}"

    @staticmethod
    def seq_of(table: Table, object_id: str) -> int | None:
        prefix, sep, num = object_id.partition("-")
        if prefix != table.prefix or not sep or not num.isdigit() or num != str(int(num)):
            return None
        return int(num)

    def program_exists(self, program_id: str, table: Table = PROGRAMS) -> bool:
        return program_id in self._program_ids[table.name]

    def event_program(self, event_id: str, table: Table = EVENTS) -> str | None:
        return self._event_programs[table.name].get(event_id)

    # ---- reads ----------------------------------------------------------------------------------------

    def get(self, table: Table, object_id: str) -> Row | None:
        seq = self.seq_of(table, object_id)
        if seq is None:
            return None
        r = self._conn.execute(f"SELECT owner, created, body FROM {table.name} WHERE seq=?", (seq,)).fetchone()
        return None if r is None else Row(seq, object_id, r[0], r[1], r[2])

    def list(
        self, table: Table, where: Mapping[str, str], *, owner: str | None, skip: int, limit: int,
        targets: Collection[str] | None = None, untargeted: bool = False,
    ) -> list[bytes]:
        """Bodies in creation order. `targets` (tables with a targets column): only objects carrying one of
        them, and also the untargeted ones when `untargeted`."""
        clauses, params = [], []
        for col, value in where.items():
            clauses.append(f"{col}=?")
            params.append(value)
        if owner is not None:
            clauses.append("owner=?")
            params.append(owner)
        if targets is not None:
            marks = ",".join("?" * len(targets))
            match = f"EXISTS (SELECT 1 FROM json_each(NULLIF(targets, '')) WHERE value IN ({marks}))" if targets else "0"
            clauses.append(f"(targets='' OR {match})" if untargeted else match)
            params.extend(targets)
        sql = f"SELECT body FROM {table.name}"
        if clauses:
            sql += " WHERE " + " AND ".join(clauses)
        sql += " ORDER BY seq LIMIT ? OFFSET ?"
        return [r[0] for r in self._conn.execute(sql, (*params, limit, skip))]

    def bodies(self, table: Table) -> Iterable[bytes]:
        return (r[0] for r in self._conn.execute(f"SELECT body FROM {table.name} ORDER BY seq"))

    def count(self, table: Table) -> int:
        return self._counts[table.name]

    # ---- writes (each followed by `await sync()` before the client is answered) ---------------------------

    def insert(
        self, table: Table, seq: int, object_id: str, owner: str, created: str, cols: Mapping[str, str], body: bytes
    ) -> None:
        names = ", ".join(table.columns)
        marks = ", ".join("?" * len(table.columns))
        self._write(
            f"INSERT INTO {table.name} (seq, id, owner, created, modified, {names}, body) "
            f"VALUES (?, ?, ?, ?, ?, {marks}, ?)",
            (seq, object_id, owner, created, created, *(cols[c] for c in table.columns), body),
        )
        self._counts[table.name] += 1
        if table.role == "program":
            self._program_ids[table.name].add(object_id)
        elif table.role == "event":
            self._event_programs[table.name][object_id] = cols["program_id"]

    def update(
        self, table: Table, seq: int, modified: str, cols: Mapping[str, str], body: bytes, owner: str | None = None
    ) -> None:
        sets = "".join(f", {c}=?" for c in table.columns)
        params: list[object] = [modified, *(cols[c] for c in table.columns), body]
        if owner is not None:  # 3.1.0: business logic may hand a ven record to another clientID
            sets += ", body=?, owner=?"
            params.append(owner)
        else:
            sets += ", body=?"
        self._write(f"UPDATE {table.name} SET modified=?{sets} WHERE seq=?", (*params, seq))
        if table.role == "event":
            self._event_programs[table.name][f"{table.prefix}-{seq}"] = cols["program_id"]

    def delete(self, table: Table, seq: int) -> None:
        self._counts[table.name] -= self._write(f"DELETE FROM {table.name} WHERE seq=?", (seq,))
        if table.role == "program":
            self._program_ids[table.name].discard(f"{table.prefix}-{seq}")
        elif table.role == "event":
            self._event_programs[table.name].pop(f"{table.prefix}-{seq}", None)
        elif table.children:
            child = _BY_NAME[table.children]
            self._counts[child.name] -= self._write(f"DELETE FROM {child.name} WHERE ven_id=?", (f"{table.prefix}-{seq}",))

    def _write(self, sql: str, params: tuple[object, ...]) -> int:
        """Run one statement in the open batch (opening one if needed); returns the rows it changed."""
        if self._batch is None:
            self._conn.execute("BEGIN")
            self._batch = self._loop.create_future()
            if self._interval_s > 0:
                self._timer = self._loop.call_later(self._interval_s, self._commit)
            else:
                self._timer = self._loop.call_soon(self._commit)
        try:
            changed = self._conn.execute(sql, params).rowcount
        except sqlite3.IntegrityError as exc:
            raise Conflict(str(exc)) from None
        self._pending += 1
        if self._pending >= self._max_writes:
            self._commit()
        return int(changed)

    async def sync(self) -> None:
        """Return once every write made so far is committed (raises if that commit failed)."""
        if self._batch is not None:
            await asyncio.shield(self._batch)

    def _commit(self) -> None:
        batch, self._batch = self._batch, None
        if batch is None:
            return
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        pending, self._pending = self._pending, 0
        try:
            self._conn.execute("COMMIT")
        except sqlite3.Error as exc:
            try:
                self._conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            self._load_caches()
            if not batch.done():
                batch.set_exception(exc)
            return
        self.commits += 1
        self.committed_writes += pending
        if not batch.done():
            batch.set_result(None)

    def close(self) -> None:
        """Commit what is pending and close the connection (call from the owning loop)."""
        self._commit()
        self._conn.close()
