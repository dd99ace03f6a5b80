"""The worker's MQTT channel: one gmqtt client per VEN (per-VEN mode), or a bounded set of clients the worker's
VENs share (pooled mode: VEN row r on client r % pool), all in the worker's one event loop.

Edge. Clients are created, connected, subscribed and disconnected inside the worker's loop (gmqtt needs no
threads). A VEN connects (pooled: the first VEN of a client connects it, the others wait for that connect),
subscribes to the topics its VTN advertised and hands every message to the worker — pooled, to each VEN that
subscribed to the message's topic on that client; connect failures, dropped connections (one per connection) and
refused subscriptions are returned or reported as error classes.
With QoS 1 the session is persistent (clean session off): the broker keeps the VEN's subscriptions and queues
what is published while it is away. A dropped client reconnects after the profile's back-off (with jitter),
drawn for each attempt. Only this module knows the client library.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import Any

import gmqtt  # type: ignore[import-untyped]
from gmqtt.mqtt.constants import MQTTv311, UNLIMITED_RECONNECTS  # type: ignore[import-untyped]
from gmqtt.mqtt.handler import MQTTConnectError  # type: ignore[import-untyped]

from harness.core import errors
from harness.core.errors import Failure
import harness.net.mqtt  # noqa: F401  (quiets the client library's log)

SUBACK_REFUSED = 0x80


class _Reconnect(dict[str, Any]):
    """gmqtt's per-client config, whose reconnect delay is the VEN's back-off for its current attempt."""

    def __init__(self, delay_for: Callable[[int], float], state: Any) -> None:
        super().__init__(reconnect_delay=0.0, reconnect_retries=UNLIMITED_RECONNECTS)
        self._delay_for = delay_for
        self._state = state  # gmqtt's ConnectionState: failed_connections counts attempts in a row

    def __getitem__(self, key: str) -> Any:
        if key == "reconnect_delay":
            return self._delay_for(int(self._state.failed_connections) + 1)
        return super().__getitem__(key)


class MqttChannel:
    """`await open(row, ...)` per VEN, then messages reach `on_message(row, payload)`; `await close()` at the end.
    `on_failure(error_class, message)` hears of dropped connections; `counters` are shipped with each delta.
    `pool` 0: a client per VEN; n > 0: n clients shared by the VENs (client id `{pool_id}-{k}`)."""

    def __init__(self, on_message: Callable[[int, bytes], None], on_failure: Callable[[int, str, str], None],
                 on_connected: Callable[[int, bool, float | None], None], *, qos: int, backoff: Callable[[int, int], float],
                 timeout_s: float, pool: int = 0, pool_id: str = "harness") -> None:
        self._on_message = on_message
        self._on_failure = on_failure
        self._on_connected = on_connected  # (row, session kept, down since) after every reconnect
        self.qos = qos
        self._backoff = backoff  # (row, attempt) -> seconds
        self.timeout_s = timeout_s
        self.pool, self.pool_id = pool, pool_id
        self.clients: dict[int, Any] = {}  # key (the row, or pooled the client's index) -> connected client
        self._opening: dict[int, asyncio.Future[None]] = {}  # pooled: key -> the connect in progress
        self._subacks: dict[tuple[int, int], asyncio.Future[tuple[int, ...]]] = {}  # (key, mid) -> SUBACK
        self.counters: dict[str, int] = {}
        self.down_since: dict[int, float] = {}  # row -> wall time its connection dropped, until it is back

    def _count(self, key: str, n: int = 1) -> None:
        self.counters[key] = self.counters.get(key, 0) + n

    def _key(self, row: int) -> int:
        return row % self.pool if self.pool else row

    async def open(self, row: int, client_id: str, host: str, port: int, topics: list[str]) -> None:
        """Connect this VEN (pooled: its shared client, once) and subscribe it to `topics` (one SUBSCRIBE); Failure
        (mqtt_connect or mqtt_subscribe) when the broker cannot be reached, refuses, or does not acknowledge within
        the timeout."""
        key = self._key(row)
        opening = self._opening.get(key)
        if opening is not None:  # pooled: another VEN is connecting this client
            await asyncio.shield(opening)
            if key not in self.clients:
                raise Failure(errors.MQTT_CONNECT, f"{host}:{port}: the shared connection failed to connect")
        elif key not in self.clients:
            self._opening[key] = asyncio.get_running_loop().create_future()
            try:
                await self._connect(key, f"{self.pool_id}-{key}" if self.pool else client_id, host, port, row)
            finally:
                self._opening.pop(key).set_result(None)
        if self.pool:
            mine = self.clients[key].harness_topics
            for t in topics:
                mine.setdefault(t, []).append(row)
        granted = await self.subscribe(row, topics)
        refused = [t for t, q in zip(topics, granted) if q >= SUBACK_REFUSED]
        if refused:
            raise Failure(errors.MQTT_SUBSCRIBE, f"the broker refused {', '.join(refused)}")

    async def _connect(self, key: int, client_id: str, host: str, port: int, row: int) -> None:
        client = gmqtt.Client(client_id, clean_session=self.qos == 0)
        client._connection_state.config = _Reconnect(lambda k: self._backoff(row, k), client._connection_state)
        client.harness_key = key
        client.harness_topics = {}  # pooled: topic -> the rows subscribed to it on this client
        client.on_message = self._message
        client.on_subscribe = self._subscribed
        client.on_disconnect = self._dropped
        self.clients[key] = client
        try:
            async with asyncio.timeout(self.timeout_s):
                await client.connect(host, port, version=MQTTv311, keepalive=60)
        except (OSError, TimeoutError, MQTTConnectError) as exc:
            await self._forget(key)
            raise Failure(errors.MQTT_CONNECT, f"{host}:{port}: {type(exc).__name__}: {exc}") from None
        client.on_connect = self._reconnected

    async def subscribe(self, row: int, topics: list[str]) -> tuple[int, ...]:
        """One SUBSCRIBE for every topic; the granted QoS per topic (0x80: refused)."""
        key = self._key(row)
        mid = self.clients[key].subscribe([gmqtt.Subscription(t, qos=self.qos) for t in topics])
        fut: asyncio.Future[tuple[int, ...]] = asyncio.get_running_loop().create_future()
        self._subacks[(key, mid)] = fut  # no await since the SUBSCRIBE was written: its SUBACK is not read yet
        try:
            async with asyncio.timeout(self.timeout_s):
                return await fut
        except TimeoutError:
            raise Failure(errors.MQTT_SUBSCRIBE, f"no SUBACK within {self.timeout_s:g}s") from None
        finally:
            self._subacks.pop((key, mid), None)

    def _rows(self, client: Any) -> list[int]:
        """The VENs on this client (per-VEN: its one VEN, even before it subscribed)."""
        if not self.pool:
            return [client.harness_key]
        return sorted({r for rows in client.harness_topics.values() for r in rows})

    # ---- client callbacks (in the loop, from gmqtt's packet handler) ------------------------------------

    def _message(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        self._count("mqtt_messages")
        if not self.pool:
            self._on_message(client.harness_key, payload)
            return 0  # PUBACK
        rows = client.harness_topics.get(topic)
        if rows is None:  # a wildcard filter the VTN advertised: the rows of every filter that matches
            rows = [r for f, rs in client.harness_topics.items() if _matches(f, topic) for r in rs]
        for row in rows:
            self._on_message(row, payload)
        return 0

    def _subscribed(self, client: Any, mid: int, granted: tuple[int, ...], properties: Any) -> None:
        fut = self._subacks.get((client.harness_key, mid))
        if fut is not None and not fut.done():
            fut.set_result(tuple(granted))

    def _dropped(self, client: Any, packet: Any, exc: BaseException | None = None) -> None:
        rows = self._rows(client)
        if client.harness_key not in self.clients or not rows or rows[0] in self.down_since:
            return  # our own disconnect at the end, or a failed reconnect attempt of a client already down
        now = time.time()
        for row in rows:
            self.down_since[row] = now
        vens = f" ({len(rows)} VENs)" if self.pool else ""
        self._on_failure(rows[0], errors.MQTT_DISCONNECT, f"the broker closed the MQTT connection{vens}; reconnecting")

    def _reconnected(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        self._count("mqtt_reconnects")
        session_kept = bool(flags)
        if not session_kept:  # the broker forgot the session (and its subscriptions): subscribe again
            self._count("mqtt_resubscribed")
            client.subscribe([gmqtt.Subscription(s.topic, qos=self.qos) for s in client.subscriptions])
        for row in self._rows(client):
            self._on_connected(row, session_kept, self.down_since.pop(row, None))

    # ---- the end -----------------------------------------------------------------------------------

    async def _forget(self, key: int) -> None:
        client = self.clients.pop(key, None)
        if client is not None:
            try:
                await asyncio.wait_for(client.disconnect(), 2.0)
            except (OSError, TimeoutError, AttributeError, RuntimeError):
                pass

    async def close(self) -> None:
        """Disconnect every client (a clean DISCONNECT: the broker keeps a persistent session, which is no
        concern of a finished run)."""
        keys = list(self.clients)
        for i in range(0, len(keys), 500):
            await asyncio.gather(*(self._forget(k) for k in keys[i:i + 500]), return_exceptions=True)


def _matches(topic_filter: str, topic: str) -> bool:
    """MQTT topic matching: `+` one level, `#` the rest (MQTT 3.1.1, 4.7)."""
    f, t = topic_filter.split("/"), topic.split("/")
    for i, level in enumerate(f):
        if level == "#":
            return True
        if i >= len(t) or level not in ("+", t[i]):
            return False
    return len(f) == len(t)
