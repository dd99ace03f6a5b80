"""Operating-system limits a fleet must fit, decided before any process starts: ephemeral ports per source
address (and the source addresses chosen for a loopback fleet), open files per process."""

from __future__ import annotations

import asyncio
import ipaddress
import subprocess
import sys
from pathlib import Path

import pytest
import uvloop
from aiohttp import web

from harness.core.fleet import FleetSpec
from harness.core.target import TargetSettings
from harness.dialects import Request
from harness.host import limits
from harness.net.h1client import H1Transport
from tests.doubles import FakeVtn
from tests.run.test_worker import run_worker, spec

PORTS = 28_232  # Linux's default 32768..60999
PER_ADDRESS = PORTS - limits.FD_HEADROOM


@pytest.fixture(autouse=True)
def fixed_limits(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(limits, "ephemeral_ports", lambda: PORTS)
    monkeypatch.setattr(limits, "fd_limit", lambda: (1024, 20_000))


def test_a_loopback_fleet_over_one_address_gets_as_many_127_addresses_as_it_needs() -> None:
    assert limits.loopback_sources(PER_ADDRESS, "per-ven", "127.0.0.1", ()) == ()
    assert limits.loopback_sources(PER_ADDRESS + 1, "per-ven", "127.0.0.1", ()) == ("127.0.0.1", "127.0.0.2")
    assert limits.loopback_sources(60_000, "per-ven", "localhost", ()) == ("127.0.0.1", "127.0.0.2", "127.0.0.3")
    assert limits.loopback_sources(60_000, "per-ven", None, ()) == ("127.0.0.1", "127.0.0.2", "127.0.0.3")  # embedded
    # Given addresses are kept; pooled fleets and other hosts get none chosen for them; ::1 is the only IPv6 one.
    assert limits.loopback_sources(60_000, "per-ven", "127.0.0.1", ("10.0.0.5",)) == ("10.0.0.5",)
    assert limits.loopback_sources(60_000, "pooled", "127.0.0.1", ()) == ()
    assert limits.loopback_sources(60_000, "per-ven", "vtn.example.com", ()) == ()
    assert limits.loopback_sources(60_000, "per-ven", "::1", ()) == ()


def test_ports_per_source_address_decide_whether_a_fleet_fits() -> None:
    assert limits.check_fleet(PER_ADDRESS, 2, "per-ven", False) is None
    msg = limits.check_fleet(PER_ADDRESS + 1, 2, "per-ven", False)
    assert msg is not None and "one source address" in msg and "list 2 or more local addresses" in msg
    assert limits.check_fleet(2 * PER_ADDRESS, 4, "per-ven", False, sources=2) is None
    msg = limits.check_fleet(2 * PER_ADDRESS + 1, 4, "per-ven", False, sources=2)
    assert msg is not None and "with 2 source addresses" in msg and "list 3 or more" in msg
    assert limits.check_fleet(10**6, 2, "pooled", False) is None
    assert "\n" not in msg


def test_open_files_per_worker_and_in_the_embedded_vtn() -> None:
    msg = limits.check_fleet(25_000, 1, "per-ven", False, sources=1)
    assert msg is not None and "--workers 2 or more" in msg
    assert limits.check_fleet(25_000, 2, "per-ven", False) is None
    msg = limits.check_fleet(25_000, 2, "per-ven", True)
    assert msg is not None and "the embedded VTN would hold 25,000 connections" in msg


def test_each_ven_connects_from_its_own_source_address_in_turn() -> None:
    """The worker hands VEN i (fleet-wide) source_addresses[i % n]; the pooled transport gets them all."""
    settings = TargetSettings(source_addresses=("127.0.0.2", "127.0.0.3", "127.0.0.4"))
    vtn = FakeVtn()
    run_worker(spec(fleet=FleetSpec(vens=10), ven_start=2, ven_stop=6, reports_per_ven=1, target_settings=settings), vtn)
    # VENs 2, 3, 4, 5 of the fleet (rows 0..3 of the shard): .4, .2, .3, .4 — by fleet index, not shard row.
    assert sorted(vtn.sources) == [(1, ("127.0.0.2",)), (1, ("127.0.0.3",)), (1, ("127.0.0.4",)), (1, ("127.0.0.4",))]
    pooled = FakeVtn()
    run_worker(spec(connection="pooled", reports_per_ven=1, target_settings=settings), pooled)
    assert pooled.sources == [(10, settings.source_addresses)]


def test_h1_connections_leave_from_the_source_addresses_given() -> None:
    """Real sockets: a VTN on 127.0.0.1 sees the requests come from 127.0.0.2 and 127.0.0.3, in turn."""
    peers: list[str] = []

    async def handler(request: web.Request) -> web.Response:
        peers.append(request.remote or "")
        return web.json_response({}, status=201)

    async def main() -> None:
        app = web.Application()
        app.router.add_post("/reports", handler)
        runner = web.AppRunner(app)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        port = runner.addresses[0][1]
        try:
            pooled = H1Transport(f"http://127.0.0.1:{port}", limit=4, timeout_s=5, sources=("127.0.0.2", "127.0.0.3"))
            replies = await asyncio.gather(*(pooled.send(Request("POST", "/reports", json={})) for _ in range(4)))
            await pooled.close()
            own = H1Transport(f"http://127.0.0.1:{port}", limit=1, timeout_s=5, sources=("127.0.0.5",))
            replies.append(await own.send(Request("POST", "/reports", json={})))
            await own.close()
            assert [r.status for r in replies] == [201] * 5
        finally:
            await runner.cleanup()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        r.run(main())
    assert sorted(peers) == ["127.0.0.2", "127.0.0.2", "127.0.0.3", "127.0.0.3", "127.0.0.5"]


def test_a_fleet_past_255_loopback_addresses_goes_on_through_127_8() -> None:
    """7,500,000 own connections need more than 255 addresses: 127.0.0.254 is followed by 127.0.1.1 (no .0 or
    .255), every address valid and distinct — where 127.0.0.256 used to end the run with a traceback."""
    addrs = limits.loopback_sources(7_500_000, "per-ven", "127.0.0.1", ())
    assert len(addrs) == -(-7_500_000 // PER_ADDRESS) > 255
    assert addrs[253:256] == ("127.0.0.254", "127.0.1.1", "127.0.1.2")
    assert len(set(addrs)) == len(addrs) and all(ipaddress.ip_address(a).is_loopback for a in addrs)
    assert not any(a.endswith((".0", ".255")) for a in addrs)
    assert limits.loopback_addresses(limits.LOOPBACK_ADDRESSES)[-1] == "127.255.255.254"
    assert limits.describe_addresses(addrs) == f"127.0.0.1 .. {addrs[-1]} ({len(addrs):,} addresses)"


def test_seven_and_a_half_million_vens_is_one_line_and_exit_2(tmp_path: Path) -> None:
    """`harness run --vens 7500000` stops before anything starts with one line naming the limit that binds."""
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--vens", "7500000", "--quiet"], capture_output=True,
                       text=True, timeout=60, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.startswith("harness: error: ") and len(r.stderr.strip().splitlines()) == 1
    assert "7,500,000" in r.stderr and "Traceback" not in r.stderr
