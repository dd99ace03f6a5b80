"""Fault injection of the embedded VTN: option parsing (pure) and each fault as a client observes it."""

from __future__ import annotations

import asyncio
import random
import time
from types import SimpleNamespace

from dataclasses import replace

import aiohttp
import pytest

from harness.vtn import VtnConfig
from harness.vtn.faults import Delay, FaultDraw, Faults, Stall, draw, parse_faults, stall_end_s

# ---- parsing ---------------------------------------------------------------------------------------------

def test_parse_all_options() -> None:
    """Every option parses to its field; describe() speaks the same vocabulary back."""
    f = parse_faults({
        "latency": "uniform:10ms:50ms", "errors": "503:0.05,500:1%", "reset_rate": "0.01", "stalls": "1m:2s,10s:500ms",
        "max_concurrency": "4", "service_time": "exp:20ms", "throttle_rate": 0.1, "retry_after": "2s", "seed": 7,
    })
    assert f == Faults(latency=Delay("uniform", 0.01, 0.05), error_rates=((503, 0.05), (500, 0.01)), reset_rate=0.01,
                       stalls=(Stall(10.0, 0.5), Stall(60.0, 2.0)), max_concurrency=4, service_time=Delay("exp", 0.02),
                       throttle_rate=0.1, retry_after_s=2.0, seed=7)
    assert parse_faults({k: v for k, v in f.describe().items() if v is not None}) == f
    assert parse_faults({"latency": "50ms"}).latency == Delay("fixed", 0.05)
    assert parse_faults({"latency": "lognormal:20ms:0.5"}).latency == Delay("lognormal", 0.02, 0.5)
    assert parse_faults({"latency": "0"}).latency is None
    assert parse_faults({}) == Faults()
    assert not Faults().is_active
    assert parse_faults({"reset": "1%", "stall": "5s:1s", "rate_limit": "0.5"}) == Faults(
        reset_rate=0.01, stalls=(Stall(5.0, 1.0),), throttle_rate=0.5)


@pytest.mark.parametrize("options,message", [
    ({"latency": "fast"}, "latency must be a duration like 50ms, 2s or 1m, got 'fast'"),
    ({"latency": "uniform:50ms:10ms"}, "latency: uniform bounds must be low:high, got 'uniform:50ms:10ms'"),
    ({"latency": "gauss:1s:2s"}, "latency must be one of 50ms, uniform:10ms:50ms, lognormal:MEDIAN:SIGMA or exp:MEAN, got 'gauss:1s:2s'"),
    ({"latency": "lognormal:20ms:x"}, "latency: lognormal sigma must be a number >= 0, got 'lognormal:20ms:x'"),
    ({"service_time": "-5ms"}, "service_time must be a duration like 50ms, 2s or 1m, got '-5ms'"),
    ({"errors": "503"}, "errors must look like 503:0.05,500:0.01, got '503'"),
    ({"errors": "200:0.1"}, "errors: status must be 400..599, got 200 in '200:0.1'"),
    ({"errors": "503:1.5"}, "errors must be between 0 and 1, got '503:1.5'"),
    ({"errors": "503:0.1,503:0.2"}, "errors: status 503 given twice in '503:0.1,503:0.2'"),
    ({"errors": "503:0.6", "reset_rate": "0.5"}, "faults: reset_rate + throttle_rate + errors must be <= 1, got 1.1"),
    ({"reset_rate": "often"}, "reset_rate must be a probability like 0.05 or 5%, got 'often'"),
    ({"stalls": "10s"}, "stalls must look like AT:DURATION (10s:2s), got '10s'"),
    ({"stalls": "10s:0s"}, "stalls: stall duration must be > 0, got '10s:0s'"),
    ({"max_concurrency": "many"}, "max_concurrency must be an integer, got 'many'"),
    ({"max_concurrency": -1}, "max_concurrency must be >= 0, got -1"),
    ({"seed": "x"}, "seed must be an integer, got 'x'"),
    ({"latncy": "5ms"}, "faults: unknown option 'latncy'"),
    ({"stall": "1s:1s", "stalls": "2s:1s"}, "faults: option 'stalls' given twice (as 'stalls')"),
])
def test_parse_errors_name_the_option(options: dict[str, object], message: str) -> None:
    """A bad value raises ValueError with one line naming the option and the value."""
    with pytest.raises(ValueError) as err:
        parse_faults(options)
    assert str(err.value).startswith(message)
    assert "\n" not in str(err.value)


def test_draw_is_exclusive_and_replayable() -> None:
    """One uniform draw picks reset, 429 or an error status by their rates; a seed replays the sequence."""
    f = parse_faults({"errors": "503:0.2,500:0.1", "reset_rate": "0.1", "throttle_rate": "0.1", "seed": 3})
    rng = random.Random(3)
    fates = [draw(f, rng) for _ in range(10_000)]
    again = random.Random(3)
    assert fates == [draw(f, again) for _ in range(10_000)]
    counts = {"reset": sum(x.reset for x in fates), "ok": sum(not x.reset and not x.status for x in fates),
              **{s: sum(x.status == s for x in fates) for s in (429, 503, 500)}}
    assert sum(counts.values()) == 10_000
    assert abs(counts["reset"] - 1000) < 150 and abs(counts[429] - 1000) < 150
    assert abs(counts[503] - 2000) < 200 and abs(counts[500] - 1000) < 150
    assert draw(Faults(), random.Random(1)) == FaultDraw()


def test_stall_windows() -> None:
    """A scheduled stall covers [at, at+duration); overlapping ones extend to the latest end."""
    stalls = (Stall(1.0, 2.0), Stall(2.5, 1.0))
    assert stall_end_s(stalls, 0.99) is None
    assert stall_end_s(stalls, 1.0) == 3.0
    assert stall_end_s(stalls, 2.6) == 3.5
    assert stall_end_s(stalls, 3.5) is None


# ---- on the wire ----------------------------------------------------------------------------------------

async def test_fixed_latency_is_added(config: VtnConfig, kit: SimpleNamespace) -> None:
    """With latency=80ms every API response takes at least 80 ms; control endpoints are not delayed."""
    async with kit.vtn_server(kit.with_faults(config, latency="80ms")) as c:
        token = await c.token()
        for _ in range(3):
            t0 = time.monotonic()
            assert (await c.call("GET", "/programs", token)).status == 200
            assert time.monotonic() - t0 >= 0.08
        t0 = time.monotonic()
        await c.stats()
        assert time.monotonic() - t0 < 0.08


async def test_error_rate_with_seed_gives_expected_statuses(config: VtnConfig, kit: SimpleNamespace) -> None:
    """errors=503:0.3,500:0.1 with seed 11: the statuses of 40 sequential requests are exactly the seeded draws."""
    faults = parse_faults({"errors": "503:0.3,500:0.1", "seed": 11})
    rng = random.Random(11)
    expected_token_fate = draw(faults, rng)
    while expected_token_fate.status:  # the token request is faulted too: find how many tries it takes
        expected_token_fate = draw(faults, rng)
    expected = [draw(faults, rng).status or 200 for _ in range(40)]
    async with kit.vtn_server(kit.with_faults(config, errors="503:0.3,500:0.1", seed=11)) as c:
        form = {"grant_type": "client_credentials", "client_id": "bl", "client_secret": "bl-secret"}
        while (tok := await c.call("POST", "/auth/token", data=form)).status != 200:
            pass
        statuses = [(await c.call("GET", "/programs", tok.body["access_token"])).status for _ in range(40)]
        assert statuses == expected
        assert {503, 500, 200} <= set(statuses)
        injected = (await c.stats())["faults"]["injected"]
        assert injected["503"] >= statuses.count(503) and injected.get("500", 0) >= statuses.count(500)
        r = await c.call("GET", "/programs", tok.body["access_token"])
        if r.status != 200:
            assert r.body["status"] == r.status and r.body["detail"] == "injected fault"


async def test_throttle_carries_retry_after(config: VtnConfig, kit: SimpleNamespace) -> None:
    """throttle_rate=1 answers 429 with Retry-After (whole seconds, rounded up) and a problem body."""
    async with kit.vtn_server(config) as c:
        r = await c.call("POST", "/_harness/faults", json={"throttle_rate": 1, "retry_after": "1500ms"})
        assert r.status == 200 and r.body["throttle_rate"] == 1
        t = await c.call("GET", "/programs")
        assert t.status == 429 and t.headers["Retry-After"] == "2" and t.body["status"] == 429
        assert (await c.stats())["faults"]["injected"] == {"429": 1}
        assert (await c.call("POST", "/_harness/faults", json={})).status == 200
        assert (await c.call("GET", "/programs")).status == 401


async def test_runtime_stall_holds_responses_until_it_ends(config: VtnConfig, kit: SimpleNamespace) -> None:
    """POST /_harness/stall returns at once; API responses are held until the stall ends, then flow again."""
    async with kit.vtn_server(config) as c:
        token = await c.token()
        t0 = time.monotonic()
        r = await c.call("POST", "/_harness/stall", json={"duration_s": 0.6})
        assert r.status == 200
        stall_answered = time.monotonic()
        results = await asyncio.gather(*(c.call("GET", "/programs", token) for _ in range(3)))
        done = time.monotonic()
        assert [x.status for x in results] == [200, 200, 200]
        assert stall_answered - t0 < 0.6
        assert done - t0 >= 0.6
        assert (await c.stats())["faults"]["stalled_responses"] == 3
        t1 = time.monotonic()
        assert (await c.call("GET", "/programs", token)).status == 200
        assert time.monotonic() - t1 < 0.6
        bad = await c.call("POST", "/_harness/stall", json={"duration_s": "long"})
        assert bad.status == 400


async def test_scheduled_stall_relative_to_start(config: VtnConfig, kit: SimpleNamespace) -> None:
    """stalls=0s:400ms holds the first responses until 400 ms after the server started."""
    t0 = time.monotonic()
    async with kit.vtn_server(kit.with_faults(config, stalls="0s:400ms")) as c:
        r = await c.call("POST", "/auth/token", data={"grant_type": "client_credentials", "client_id": "bl",
                                                      "client_secret": "bl-secret"})
        assert r.status == 200
        assert time.monotonic() - t0 >= 0.4


async def test_concurrency_cap_queues_requests(config: VtnConfig, kit: SimpleNamespace) -> None:
    """max_concurrency=1 with service_time=100ms serves 4 concurrent requests one after another."""
    async with kit.vtn_server(config) as c:
        token = await c.token()
        r = await c.call("POST", "/_harness/faults", json={"max_concurrency": 1, "service_time": "100ms"})
        assert r.status == 200
        t0 = time.monotonic()

        async def timed() -> float:
            assert (await c.call("GET", "/programs", token)).status == 200
            return time.monotonic() - t0

        finished = sorted(await asyncio.gather(*(timed() for _ in range(4))))
        for i, t in enumerate(finished):
            assert t >= 0.1 * (i + 1), finished
        assert (await c.stats())["faults"]["queued"] == 3


async def test_reset_aborts_the_connection(config: VtnConfig, kit: SimpleNamespace) -> None:
    """reset_rate=1 aborts every API connection without a response; the stats count resets by route."""
    async with kit.vtn_server(config) as c:
        token = await c.token()
        await c.call("POST", "/_harness/faults", json={"reset_rate": 1})
        with pytest.raises((aiohttp.ClientConnectionError, aiohttp.ClientPayloadError)):
            await c.call("POST", "/reports", token, json={})
        stats = await c.stats()
        assert stats["faults"]["resets"] >= 1
        assert stats["requests"]["POST /reports"] == {"reset": stats["faults"]["resets"]}
        assert stats["reports_stored"] == 0


async def test_control_endpoints_reject_bad_fault_config(config: VtnConfig, kit: SimpleNamespace) -> None:
    """POST /_harness/faults with a bad option is 400 naming it, and the old config stays."""
    async with kit.vtn_server(kit.with_faults(config, latency="1ms")) as c:
        r = await c.call("POST", "/_harness/faults", json={"errors": "abc"})
        assert r.status == 400 and r.body["detail"] == "errors must look like 503:0.05,500:0.01, got 'abc'"
        assert (await c.call("GET", "/_harness/faults")).body["latency"] == "1ms"


async def test_drop_after_ack_answers_201_stores_nothing_and_counts_each_drop(config: VtnConfig, kit: SimpleNamespace) -> None:
    """drop_after_ack=0.3 over 200 report POSTs: all answered 201 with an id; stored + the VTN's own drop count = 200,
    and reading back finds exactly the stored ones; a seed replays the same drops."""
    async def run_once(db: str) -> tuple[int, int, list[bool]]:
        async with kit.vtn_server(kit.with_faults(replace(config, db_path=db), drop_after_ack="0.3", seed=11)) as c:
            program_id, event_id = await kit.program_and_event(c)
            ven = await c.token("ven-a")
            fates = []
            for i in range(200):
                body = {**kit.report_body(program_id, event_id), "reportName": f"r{i}"}
                r = await c.call("POST", "/reports", ven, json=body)
                assert r.status == 201 and r.body["id"]
                got = await c.call("GET", f"/reports/{r.body['id']}", ven)
                fates.append(got.status == 404)
            stats = await c.stats()
            return stats["reports_stored"], stats["faults"]["dropped_after_ack"], fates

    stored, dropped, fates = await run_once(config.db_path)
    assert stored + dropped == 200 and dropped == sum(fates) and 30 < dropped < 90
    assert (await run_once(":memory:"))[2] == fates
