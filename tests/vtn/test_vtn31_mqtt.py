"""MQTT notifications of the embedded 3.1.0 VTN through a real broker (Mosquitto, and the amqtt fallback).

Subscribers are gmqtt clients in the test's loop; every wait is an event or a predicate with a deadline, and
counts are exact: a VEN-specific topic carries exactly what targets that VEN.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import replace
from types import SimpleNamespace
from typing import Any, Iterator

import gmqtt
import orjson
import pytest
from gmqtt.mqtt.constants import MQTTv311

from harness.vtn import VtnConfig
from harness.vtn.broker import Broker, BrokerError



class Subscriber:
    """One MQTT client recording every message it receives, in order."""

    def __init__(self, name: str, *, persistent: bool = False) -> None:
        self.client = gmqtt.Client(name, clean_session=not persistent)
        self.client.set_config({"reconnect_delay": 0.1})
        self.messages: list[tuple[str, dict[str, Any]]] = []
        self.changed = asyncio.Event()
        self.subscribed = asyncio.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = lambda *_: self.subscribed.set()

    def _on_message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        self.messages.append((topic, orjson.loads(payload)))
        self.changed.set()
        return 0

    async def start(self, url: str, *topics: str) -> Subscriber:
        host, port = url.removeprefix("mqtt://").rsplit(":", 1)
        await self.client.connect(host, int(port), version=MQTTv311)
        for topic in topics:
            self.subscribed.clear()
            self.client.subscribe(topic, qos=1)
            await asyncio.wait_for(self.subscribed.wait(), 10)
        return self

    async def wait_for(self, n: int, timeout_s: float = 10.0) -> list[tuple[str, dict[str, Any]]]:
        deadline = time.monotonic() + timeout_s
        while len(self.messages) < n:
            self.changed.clear()
            await asyncio.wait_for(self.changed.wait(), max(0.01, deadline - time.monotonic()))
        return self.messages

    async def stop(self) -> None:
        await self.client.disconnect()


@pytest.fixture(params=["mosquitto", "amqtt"])
def broker(request: pytest.FixtureRequest) -> Iterator[Broker]:
    if request.param == "mosquitto":
        request.getfixturevalue("needs_mosquitto")
    with Broker(kind=request.param) as b:
        yield b


@pytest.fixture
def mosquitto(needs_mosquitto: str) -> Iterator[Broker]:
    with Broker(kind="mosquitto", persistence=True) as b:
        yield b


async def mqtt_counts(s: Any) -> dict[str, Any]:
    return dict((await s.stats())["mqtt"])


async def settled(s: Any, kit: SimpleNamespace, published: int) -> dict[str, Any]:
    """Wait until the VTN published `published` notifications and the broker acknowledged every one."""
    async def done() -> bool:
        m = await mqtt_counts(s)
        return bool(m["published"] == published and m["acked"] == published and m["queued"] == m["batches"] == 0)

    await kit.wait_for(done, 10, f"{published} notifications published and acknowledged")
    return await mqtt_counts(s)


@pytest.mark.usefixtures("needs_mosquitto")
async def test_notifiers_and_topic_endpoints(config: VtnConfig, kit: SimpleNamespace) -> None:
    """/notifiers advertises the broker (ANONYMOUS, JSON); topic endpoints name per-operation topics, a VEN
    gets its own VEN topics only, and the fleet-wide ones need read_bl."""
    with Broker(kind="mosquitto") as b:
        async with kit.vtn_server(replace(config, mqtt_url=b.url)) as s:
            c = s.v31()
            bl = await c.token()
            ven, ven_id = await kit.ven31(c, "ven-a")
            other, other_id = await kit.ven31(c, "ven-b")
            pid = (await c.call("POST", "/programs", bl, json={"programName": "p1"})).body["id"]
            r = await c.call("GET", "/notifiers", ven)
            assert r.body == {"WEBHOOK": True, "MQTT": {"URIS": [b.url], "serialization": "JSON",
                                                       "authentication": {"method": "ANONYMOUS"}}}

            async def topics(path: str, token: str, status: int = 200) -> Any:
                reply = await c.call("GET", "/notifiers/mqtt/topics" + path, token)
                assert reply.status == status, (path, reply.body)
                return reply.body.get("topics")

            assert await topics("/programs", ven) == {"CREATE": "programs/create", "UPDATE": "programs/update",
                                                      "DELETE": "programs/delete", "ALL": "programs/+"}
            assert await topics(f"/programs/{pid}", ven) == {"UPDATE": f"programs/{pid}/update",
                                                             "DELETE": f"programs/{pid}/delete", "ALL": f"programs/{pid}/+"}
            assert (await topics(f"/programs/{pid}/events", ven))["CREATE"] == f"programs/{pid}/events/create"
            assert (await topics(f"/vens/{ven_id}/events", ven))["ALL"] == f"vens/{ven_id}/events/+"
            assert (await topics(f"/vens/{ven_id}/programs", ven))["CREATE"] == f"vens/{ven_id}/programs/create"
            assert (await topics(f"/vens/{ven_id}/resources", ven))["DELETE"] == f"vens/{ven_id}/resources/delete"
            assert "CREATE" not in await topics(f"/vens/{ven_id}", ven)
            await topics(f"/vens/{other_id}/events", ven, 403)
            await topics("/vens/ven-999/events", ven, 404)
            await topics("/programs/prg-999", ven, 404)
            for path in ("/events", "/reports", "/subscriptions", "/vens", "/resources"):
                await topics(path, ven, 403)
                assert (await topics(path, bl))["CREATE"] == path[1:] + "/create"
            assert other


async def test_a_created_event_reaches_the_program_topic_and_only_targeted_vens(
        broker: Broker, config: VtnConfig, kit: SimpleNamespace) -> None:
    """A targeted event goes to the program's events topic and to the VEN topics of exactly the VENs granted its
    target (with only their targets); an untargeted one to every VEN; the VTN's counts match what arrived."""
    async with kit.vtn_server(replace(config, mqtt_url=broker.url)) as s:
        c = s.v31()
        bl = await c.token()
        vens = {}
        for name in ("ven-a", "ven-b", "ven-c"):
            _, vens[name] = await kit.ven31(c, name)
        await kit.grant31(c, bl, vens["ven-a"], "ven-a", ["g1", "a-only"])
        await kit.grant31(c, bl, vens["ven-b"], "ven-b", ["g1"])
        pid = (await c.call("POST", "/programs", bl, json={"programName": "p1"})).body["id"]
        before = await settled(s, kit, 11)
        assert before["by_family"] == {"vens/create": 3, "vens/update": 2, "vens/{venID}/update": 2,
                                       "programs/create": 1, "vens/{venID}/programs/create": 3}
        fleet = await Subscriber("fleet").start(broker.url, f"programs/{pid}/events/+")
        subs = {name: await Subscriber(name).start(broker.url, f"vens/{vid}/events/+") for name, vid in vens.items()}
        try:
            targeted = await c.call("POST", "/events", bl, json=kit.event31(pid, ["g1", "secret"], "targeted"))
            untargeted = await c.call("POST", "/events", bl, json=kit.event31(pid, None, "open"))
            assert targeted.status == untargeted.status == 201
            # the untargeted event is published after the targeted one: once ven-c has it, it would have had both
            received = {name: await sub.wait_for(2 if name != "ven-c" else 1) for name, sub in subs.items()}
            assert [m["object"]["eventName"] for _, m in await fleet.wait_for(2)] == ["targeted", "open"]
        finally:
            for sub in (fleet, *subs.values()):
                await sub.stop()
        for name in ("ven-a", "ven-b"):
            (t1, n1), (t2, n2) = received[name]
            assert (t1, t2) == (f"vens/{vens[name]}/events/create",) * 2
            assert (n1["object"]["eventName"], n1["object"]["targets"], n1["targets"]) == ("targeted", ["g1"], ["g1"])
            assert (n2["object"]["eventName"], n2["targets"]) == ("open", None)
            for _, n in received[name]:
                kit.assert_valid("notification", n, "3.1.0")
                assert n["objectType"] == "EVENT" and n["operation"] == "CREATE"
        assert [(t, n["object"]["eventName"]) for t, n in received["ven-c"]] == [(f"vens/{vens['ven-c']}/events/create", "open")]
        assert fleet.messages[0][1]["object"] == targeted.body  # the fleet topic carries the whole object
        m = await settled(s, kit, 11 + (2 + 2) + (2 + 3))
        assert m["by_family"]["vens/{venID}/events/create"] == 5
        assert m["by_family"]["programs/{programID}/events/create"] == 2
        assert m["by_family"]["events/create"] == 2
        detail = (await c.call("GET", s.root + "/_harness/mqtt")).body
        # each VEN's own topics: its grant (vens/{id}/update, a and b), the program, and its events
        assert detail["by_ven"] == {vens["ven-a"]: 4, vens["ven-b"]: 4, vens["ven-c"]: 2}
        assert detail["by_topic"][f"vens/{vens['ven-c']}/events/create"] == 1


async def test_notifications_published_while_the_broker_is_down_arrive_after_it_is_back(
        mosquitto: Broker, config: VtnConfig, kit: SimpleNamespace) -> None:
    """The publisher holds what it publishes while the broker is away and sends it once reconnected; a persistent
    subscriber session gets it exactly once."""
    async with kit.vtn_server(replace(config, mqtt_url=mosquitto.url)) as s:
        c = s.v31()
        bl = await c.token()
        pid = (await c.call("POST", "/programs", bl, json={"programName": "p1"})).body["id"]
        sub = await Subscriber("persistent-sub", persistent=True).start(mosquitto.url, "events/+")
        try:
            await c.call("POST", "/events", bl, json=kit.event31(pid, None, "before"))
            await sub.wait_for(1)
            mosquitto.stop()

            async def offline() -> bool:
                return not (await mqtt_counts(s))["connected"]

            await kit.wait_for(offline, 10, "the publisher to see the broker gone")
            during = await c.call("POST", "/events", bl, json=kit.event31(pid, None, "during"))
            assert during.status == 201
            held = await mqtt_counts(s)
            assert (held["published"], held["batches"]) == (3, 1)  # the operation waits, unsent, for the broker
            mosquitto.start()
            received = await sub.wait_for(2, 20)
        finally:
            await sub.stop()
        assert [n["object"]["eventName"] for _, n in received] == ["before", "during"]
        m = await settled(s, kit, 1 + 2 + 2)
        assert m["reconnects"] == 1 and m["dropped"] == 0


@pytest.mark.parametrize("kind", ["mosquitto", "amqtt"])
def test_broker_start_stop_and_a_taken_port(kind: str, request: pytest.FixtureRequest) -> None:
    """A broker starts on a free port and stops; one asked for a port already taken fails in one line."""
    if kind == "mosquitto":
        request.getfixturevalue("needs_mosquitto")
    with Broker(kind=kind) as b:
        assert b.is_alive and b.url == f"mqtt://127.0.0.1:{b.port}"
        with pytest.raises(BrokerError) as err:
            Broker(kind=kind, port=b.port).start()
        assert "before it was ready" in str(err.value) and "\n" not in str(err.value)
    assert not b.is_alive
    with pytest.raises(BrokerError, match="persistence needs mosquitto"):
        Broker(kind="amqtt", persistence=True)
