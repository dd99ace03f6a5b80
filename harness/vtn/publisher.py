"""The VTN's MQTT publisher: one asyncio client (gmqtt) that sends every notification, and counts what it sent.

Edge. Created and closed inside the VTN's own loop; no client threads. `publish` never blocks a request: it
queues, and one pump task hands messages to the client in chunks, keeping at most `WINDOW` QoS 1 messages
unacknowledged. While the broker is away messages are held and sent when the client has reconnected; QoS 1
messages a restarted broker never acknowledged are sent again. Only this module knows the client library.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections import Counter, deque
from dataclasses import dataclass
from itertools import islice
from typing import Any, Iterable, Iterator

import gmqtt  # type: ignore[import-untyped]
from gmqtt.mqtt.constants import MQTTv311, UNLIMITED_RECONNECTS  # type: ignore[import-untyped]
from gmqtt.storage import PersistentStorage  # type: ignore[import-untyped]

from harness.net.mqtt import parse_mqtt_url  # also quiets the client library's log
from harness.vtn.topics import Message

log = logging.getLogger(__name__)

WINDOW = 20_000  # unacknowledged QoS 1 messages at most (MQTT packet ids are 16 bits)
CHUNK = 500  # messages handed to the client between yields to the loop
RECONNECT_DELAY_S = 0.25


@dataclass
class PublishCounts:
    """What the VTN published. `published` counts each notification once, however often it was (re)sent."""

    qos: int
    published: int = 0
    acked: int = 0
    resent: int = 0
    dropped: int = 0
    reconnects: int = 0
    connected: bool = False

    def __post_init__(self) -> None:
        self.by_family: Counter[str] = Counter()
        self.by_topic: Counter[str] = Counter()
        self.by_ven: Counter[str] = Counter()
        self.queued = 0
        self.batches = 0
        self.inflight = 0

    def count(self, m: Message) -> None:
        self.published += 1
        self.by_family[m.family] += 1
        self.by_topic[m.topic] += 1
        if m.ven_id is not None:
            self.by_ven[m.ven_id] += 1

    def summary(self) -> dict[str, Any]:
        return {
            "qos": self.qos, "connected": self.connected, "published": self.published, "acked": self.acked,
            "inflight": self.inflight, "queued": self.queued, "batches": self.batches, "resent": self.resent,
            "dropped": self.dropped,
            "reconnects": self.reconnects, "ven_topics": sum(self.by_ven.values()),
            "by_family": dict(sorted(self.by_family.items())),
        }

    def detail(self) -> dict[str, Any]:
        return {**self.summary(), "by_topic": dict(sorted(self.by_topic.items())),
                "by_ven": dict(sorted(self.by_ven.items()))}


class _AckedStorage(PersistentStorage):  # type: ignore[misc]
    """gmqtt's store of unacknowledged QoS 1 packets, telling the publisher each packet id, each PUBACK and a lost
    session."""

    def __init__(self, publisher: Publisher) -> None:
        super().__init__()
        self._publisher = publisher

    def push_message(self, mid: int, raw_package: bytes) -> None:
        super().push_message(mid, raw_package)
        self._publisher._stored(mid)

    def remove_message_by_mid(self, mid: int) -> None:
        super().remove_message_by_mid(mid)
        self._publisher._acked(mid)

    def clear(self) -> None:
        # CONNACK without a session (a broker restarted without persistence): gmqtt forgets what it had in
        # flight; the publisher sends those messages again instead of losing them.
        super().clear()
        self._publisher._session_lost()


class Publisher:
    """`await Publisher.connect(url, qos=1)`, then `publish(...)` from handlers; `await close()` in the same loop."""

    def __init__(self, url: str, qos: int) -> None:
        self.url = url
        self.qos = qos
        self.counts = PublishCounts(qos)
        self._host, self._port = parse_mqtt_url(url)
        self._queue: deque[Message] = deque()  # drawn from _batches, ready to send
        self._batches: deque[Iterator[Message]] = deque()  # one per object operation, not yet drawn
        self._inflight: dict[int, Message] = {}
        self._wake = asyncio.Event()
        self._window = asyncio.Event()
        self._online = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()
        self._client = gmqtt.Client(f"harness-vtn-{uuid.uuid4().hex[:12]}", clean_session=True,
                                    persistent_storage=_AckedStorage(self))
        self._client.set_config({"reconnect_retries": UNLIMITED_RECONNECTS, "reconnect_delay": RECONNECT_DELAY_S})
        self._client.on_connect = self._on_connect
        self._client.on_disconnect = self._on_disconnect
        self._pump_task: asyncio.Task[None] | None = None
        self._sending: Message | None = None
        self._ever_connected = False

    @classmethod
    async def connect(cls, url: str, *, qos: int = 1, timeout_s: float = 10.0) -> Publisher:
        """A connected publisher; retries a refused connection until `timeout_s`, then raises ConnectionError."""
        self = cls(url, qos)
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                await asyncio.wait_for(self._client.connect(self._host, self._port, version=MQTTv311, keepalive=30),
                                       max(0.05, deadline - time.monotonic()))
                break
            except (OSError, asyncio.TimeoutError) as exc:
                if time.monotonic() >= deadline:
                    raise ConnectionError(f"cannot connect to the MQTT broker {url} within {timeout_s:g}s: "
                                          f"{type(exc).__name__}: {exc}") from None
                await asyncio.sleep(0.05)  # a retry interval, not a synchronisation: the broker may be starting
        self._pump_task = asyncio.get_running_loop().create_task(self._pump(), name="mqtt-publisher")
        return self

    # ---- the handlers' side --------------------------------------------------------------------------

    def publish(self, messages: Iterable[Message]) -> None:
        """Queue one operation's messages. Nothing is built here: the pump draws them from the iterable in
        chunks, in order, after the request that made them has been answered (a fan-out to 100,000 VENs costs
        the request nothing; while the broker is away an operation waits as an unstarted iterator)."""
        self._batches.append(iter(messages))
        self.counts.batches = len(self._batches)
        self._idle.clear()
        self._wake.set()

    async def drained(self, timeout_s: float) -> bool:
        """Wait until everything queued was sent (and, with QoS 1, acknowledged); False at the deadline."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout_s)
            return True
        except asyncio.TimeoutError:
            return False

    # ---- the pump ------------------------------------------------------------------------------------

    async def _pump(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._queue or self._batches:
                if not self._client.is_connected:
                    self._online.clear()
                    await self._online.wait()
                    continue
                if self.qos and len(self._inflight) >= WINDOW:
                    self._window.clear()
                    await self._window.wait()
                    continue
                if len(self._queue) < CHUNK and self._batches:
                    self._draw()
                room = WINDOW - len(self._inflight) if self.qos else CHUNK
                for _ in range(min(CHUNK, room, len(self._queue))):
                    self._send(self._queue.popleft())
                await asyncio.sleep(0)  # let the loop write, read PUBACKs and serve requests
            self._check_idle()

    def _draw(self) -> None:
        """Move up to CHUNK messages from the oldest operation into the send queue."""
        batch = self._batches[0]
        before = len(self._queue)
        self._queue.extend(islice(batch, CHUNK))
        self.counts.queued += len(self._queue) - before
        if len(self._queue) - before < CHUNK:
            self._batches.popleft()
            self.counts.batches = len(self._batches)

    def _send(self, m: Message) -> None:
        self.counts.queued -= 1
        self._sending = m
        self._client.publish(m.topic, m.payload, qos=self.qos)  # QoS 1: _stored() learns its packet id
        self._sending = None
        if m.resend:
            self.counts.resent += 1
        else:
            self.counts.count(m)

    def _stored(self, mid: int) -> None:
        if self._sending is not None:
            self._inflight[mid] = self._sending
            self.counts.inflight = len(self._inflight)

    def _check_idle(self) -> None:
        if not self._queue and not self._batches and not self._inflight:
            self._idle.set()

    # ---- client callbacks ------------------------------------------------------------------------------

    def _acked(self, mid: int) -> None:
        if self._inflight.pop(mid, None) is not None:
            self.counts.acked += 1
            self.counts.inflight = len(self._inflight)
            if len(self._inflight) < WINDOW // 2:
                self._window.set()
            self._check_idle()

    def _session_lost(self) -> None:
        lost = list(self._inflight.values())
        self._inflight.clear()
        self.counts.inflight = 0
        # Sent again before what was queued after them; counted as resent, not as new notifications.
        for m in reversed(lost):
            self._queue.appendleft(m._replace(resend=True))
        self.counts.queued += len(lost)
        if lost:
            log.info("MQTT broker lost its session: sending %d unacknowledged notifications again", len(lost))
            self._wake.set()
        self._window.set()

    def _on_connect(self, client: Any, flags: int, rc: int, properties: Any) -> None:
        if self._ever_connected:
            self.counts.reconnects += 1
            log.info("MQTT publisher reconnected to %s", self.url)
        self._ever_connected = True
        self.counts.connected = True
        self._online.set()
        self._wake.set()

    def _on_disconnect(self, client: Any, packet: Any, exc: BaseException | None = None) -> None:
        self.counts.connected = False
        self._online.clear()

    async def close(self) -> None:
        """Stop the pump and disconnect (what is still queued is dropped and counted)."""
        if self._pump_task is not None:
            self._pump_task.cancel()
            await asyncio.gather(self._pump_task, return_exceptions=True)
        self.counts.dropped += len(self._queue) + sum(sum(1 for _ in b) for b in self._batches)
        self._queue.clear()
        self._batches.clear()
        try:
            await asyncio.wait_for(self._client.disconnect(), 2.0)
        except (OSError, asyncio.TimeoutError, AttributeError):
            pass
        self.counts.connected = False
