"""The snake_case example dialect against a small VTN that speaks it, through the real aiohttp transport."""

from __future__ import annotations

import asyncio
import json
import urllib.request
from collections import Counter
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import uvloop

from harness.dialects import Dialect, LoadReading, get, resolve_granularity, sites_from_loads
from harness.dialects.lenient import TIME_WITHOUT_DATE
from harness.net.aiotransport import AiohttpTransport
from harness.net.wire import decode
from tests.snake_server import STORE_KEY, SnakeServer, Store, make_app, serve

D_NAME = "snake-case-example"
START, DURATION = "2026-11-28T10:00:00.000Z", "PT15S"


def _run(body: Callable[[AiohttpTransport, Store], Awaitable[None]]) -> None:
    """Run body(transport, store) in one uvloop loop with the snake VTN on 127.0.0.1:0; close both in that loop."""

    async def main() -> None:
        app = make_app()
        runner, port = await serve(app)
        transport = AiohttpTransport(f"http://127.0.0.1:{port}", limit=4, timeout_s=5.0)
        try:
            await body(transport, app[STORE_KEY])
        finally:
            await transport.close()
            await runner.cleanup()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
        runner.run(asyncio.wait_for(main(), 20))


async def _setup(t: AiohttpTransport, d: Dialect) -> tuple[str, str, str]:
    """Provisioning token, program and event: what the operator does before VENs start."""
    tok = d.parse_token(decode((await t.send(d.token("bl", "bl-secret"))).body)).access_token
    program_id = d.parse_id(decode((await t.send(d.create_program("p"), tok)).body))
    event_id = d.parse_id(decode((await t.send(d.create_event(program_id, "p-telemetry", START, "PT24H", 0), tok)).body))
    return tok, program_id, event_id


def _loads(ven: str, n: int) -> list[LoadReading]:
    kinds = ["base", "hvac", "ev", "pv", "kitchen"]
    return [
        LoadReading(f"{ven}-site-{i % 2:03d}", f"{ven}-site-{i % 2:03d}-{kinds[i % 5]}-{i}", kinds[i % 5], 0.01 * i, 0.5 * i)
        for i in range(n)
    ]


def test_provision_then_n_load_reports_stored_exactly() -> None:
    """Token → VEN (its own auth_token) → resources → 7 load readings: 7 POSTs, the VTN stores exactly 7."""
    d = get(D_NAME)

    async def body(t: AiohttpTransport, store: Store) -> None:
        tok, program_id, event_id = await _setup(t, d)
        r = await t.send(d.create_ven("ven-1"), tok)
        assert r.status == 201
        ven_id, ven_token = d.parse_id(decode(r.body)), d.token_from_create_ven(decode(r.body))
        assert ven_token is not None and ven_token.expires_in_s is None
        loads = _loads("ven-1", 7)
        sites = sites_from_loads(loads)
        for s in sites:
            assert (await t.send(d.create_resource(ven_id, s.name), ven_token.access_token)).status == 201
        reqs = d.reports(program_id, event_id, "ven-1", sites, loads, START, DURATION, resolve_granularity(d, None))
        statuses = [(await t.send(req, ven_token.access_token)).status for req in reqs]
        assert statuses == [201] * 7
        assert len(store.reports) == 7 and len(store.resources) == 2
        assert [rep["load_name"] for rep in store.reports] == [ld.load_name for ld in loads]
        assert set(store.report_tokens) == {ven_token.access_token}
        assert store.reports[3]["report_type"] == "USAGE" and store.reports[3]["energy_kwh"] == 0.03

    _run(body)


def test_409_lookup_returns_the_vens_token() -> None:
    """A second POST /vens is 409 (native error body, not a deviation); GET /vens?ven_name= gives the same token."""
    d = get(D_NAME)

    async def body(t: AiohttpTransport, store: Store) -> None:
        tok, _, _ = await _setup(t, d)
        first = d.token_from_create_ven(decode((await t.send(d.create_ven("ven-9"), tok)).body))
        again = await t.send(d.create_ven("ven-9"), tok)
        assert again.status == 409
        assert d.parse_problem(409, decode(again.body)) == "409: conflict: ven_name ven-9 exists"
        found = decode((await t.send(d.find_ven("ven-9"), tok)).body)
        assert d.token_from_create_ven(found) == first and first is not None
        assert d.parse_first_id(found) == "3"
        assert d.deviations.peek() == {}

    _run(body)


def test_reports_need_the_vens_own_token() -> None:
    """A report sent with the provisioning token or another VEN's token is refused; none is stored."""
    d = get(D_NAME)

    async def body(t: AiohttpTransport, store: Store) -> None:
        tok, program_id, event_id = await _setup(t, d)
        other = d.token_from_create_ven(decode((await t.send(d.create_ven("ven-b"), tok)).body))
        assert other is not None
        await t.send(d.create_ven("ven-a"), tok)
        [req] = d.reports(program_id, event_id, "ven-a", [], _loads("ven-a", 1), START, DURATION, "load")
        assert (await t.send(req, tok)).status == 403
        assert (await t.send(req, other.access_token)).status == 403
        assert (await t.send(req, "nope")).status == 401
        assert store.reports == []

    _run(body)


def test_events_with_odd_timestamps_parse() -> None:
    """The VTN's `created_at: "10:04:29"` becomes None and a noted deviation; the signal level is read."""
    d = get(D_NAME)

    async def body(t: AiohttpTransport, store: Store) -> None:
        tok, program_id, event_id = await _setup(t, d)
        await t.send(d.create_event(program_id, "shed", START, "PT1H", 2), tok)
        events = d.parse_events(decode((await t.send(d.find_events(program_id), tok)).body))
        assert [(e.event_name, e.signal.level, e.duration_s, e.created_epoch_s) for e in events] == [
            ("p-telemetry", 0, 86400.0, None), ("shed", 2, 3600.0, None)
        ]
        assert events[1].start_epoch_s == 1_795_860_000.0 and events[1].program_id == program_id
        assert d.deviations.take()[TIME_WITHOUT_DATE].count == 2
        progs = d.parse_programs(decode((await t.send(d.find_program("p"), tok)).body))
        assert [(p.id, p.program_name) for p in progs] == [(program_id, "p")]

    _run(body)


def test_granularity_is_forced_to_load() -> None:
    """The snake dialect supports only per-load reports; without load readings it sends one per site."""
    d = get(D_NAME)
    assert resolve_granularity(d, None) == "load"
    with pytest.raises(ValueError, match="target.granularity 'ven' is not supported by dialect snake-case-example"):
        resolve_granularity(d, "ven")
    sites = sites_from_loads(_loads("v", 4))
    reqs = d.reports("1", "2", "v", sites, None, START, DURATION, "load")
    assert [r.json["resource_name"] for r in reqs] == ["v-site-000", "v-site-001"]
    with pytest.raises(ValueError, match="one report per reading"):
        d.report("1", "2", "v", sites, START, DURATION)


def test_spawned_snake_server_answers() -> None:
    """The process wrapper used by the end-to-end run starts, answers, and stops."""
    with SnakeServer() as s:
        with urllib.request.urlopen(s.url + "/_test/stats", timeout=5) as resp:
            assert json.loads(resp.read())["reports"] == 0


def test_supervisor_run_against_the_snake_vtn(tmp_path: Path) -> None:
    """6 VENs x 2 intervals on the snake VTN: every load reported exactly twice, each with its VEN's own token."""
    from harness.core.profile import Profile
    from harness.run.session import RunSession

    with SnakeServer() as s:
        p = Profile(
            name="snake", target=s.url, dialect=D_NAME, vens=6, sites_per_ven=2, interval_s=0.5,
            reports_per_ven=2, workers=1, seed=3, max_loop_lag_ms=5000,
        )
        outcome = RunSession(p, tmp_path).run()
        with urllib.request.urlopen(s.url + "/_test/stats", timeout=5) as resp:
            stats: dict[str, Any] = json.loads(resp.read())
    assert (outcome.exit_code, outcome.verdict) == (0, "pass")
    per_load = Counter(tuple(k) for k in stats["report_keys"])
    assert stats["vens"] == 6 and stats["resources"] == 12
    assert len({ven for ven, _ in per_load}) == 6 and set(per_load.values()) == {2}
    assert outcome.summary["operations"]["report"]["ok"] == stats["reports"]
    assert outcome.summary["errors"] == {}
