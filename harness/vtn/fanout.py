"""Who is notified of a 3.1.0 object operation, and with which body: MQTT messages and webhook posts.

Pure (no I/O): the VTN hands the results to its publisher and notifier. A program or event reaches the
VEN-specific topics of exactly the VENs that may read it, each with only its granted targets; a webhook
subscriber is filtered by its program, its targets and object privacy as the Definition says.
"""

from __future__ import annotations

import re

from typing import Any, Iterable, Iterator

import orjson

from harness.vtn import topics
from harness.vtn.notifier import _OPERATION_ALIASES
from harness.vtn.privacy import TargetIndex, effective, hidden, targets_of, visible
from harness.vtn.topics import Message

_PRIVATE = frozenset({"VEN", "RESOURCE", "REPORT", "SUBSCRIPTION"})  # readable by their clientID and BL only
_HTTP_OF = {"CREATE": "POST", "UPDATE": "PUT", "DELETE": "DELETE"}


def notification(object_type: str, operation: str, obj: dict[str, Any]) -> bytes:
    """The 3.1.0 notification body (camelCase, JSON once): {objectType, operation, object, targets}."""
    targets = obj.get("targets")
    return orjson.dumps({"objectType": object_type, "operation": operation, "object": obj,
                         "targets": targets if targets else None})


def snake_case(body: bytes) -> bytes:
    """A notification as the Alliance's reference 3.1 VTN sends it: every key snake_case (`objectType` ->
    `object_type`, `intervalPeriod` -> `interval_period`), values unchanged."""
    return orjson.dumps(_snake(orjson.loads(body)))


def _snake(value: Any) -> Any:
    if isinstance(value, dict):
        return {_SNAKE.sub(r"_\1", k).lower() if isinstance(k, str) else k: _snake(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_snake(v) for v in value]
    return value


_SNAKE = re.compile(r"(?<=[a-z0-9])([A-Z])")


def snake_messages(messages: Iterator[Message]) -> Iterator[Message]:
    """`mqtt_messages` with snake_case payloads (one conversion per distinct payload)."""
    done: dict[bytes, bytes] = {}
    for m in messages:
        payload = done.get(m.payload)
        if payload is None:
            payload = done[m.payload] = snake_case(m.payload)
        yield m._replace(payload=payload)


def mqtt_messages(object_type: str, operation: str, obj: dict[str, Any], index: TargetIndex) -> Iterator[Message]:
    """Every message of this operation: the fleet topics with the whole object, then the VEN-specific topics.
    Lazy, so a fan-out to 100,000 VENs is built by the publisher's pump in chunks, not inside the request."""
    full = notification(object_type, operation, obj)
    for topic, family in topics.fleet_topics(object_type, operation, obj):
        yield Message(topic, full, family, None)
    if object_type in ("PROGRAM", "EVENT"):
        object_targets = targets_of(obj)
        payloads: dict[tuple[str, ...], bytes] = {}  # one body per distinct set of targets a VEN may see
        for ven_id in index.reached(object_targets):
            shown = hidden(obj, index.granted(ven_id))
            key = tuple(shown.get("targets") or ())
            payload = payloads.get(key)
            if payload is None:
                payload = payloads[key] = notification(object_type, operation, shown)
            topic, family = topics.ven_topic(object_type, operation, ven_id)  # type: ignore[misc]
            yield Message(topic, payload, family, ven_id)
    elif object_type == "RESOURCE" or (object_type == "VEN" and operation != "CREATE"):
        ven_id = str(obj.get("venID") if object_type == "RESOURCE" else obj.get("id"))
        vt = topics.ven_topic(object_type, operation, ven_id)
        if vt is not None:
            yield Message(vt[0], full, vt[1], ven_id)


def webhook_posts(
    subscriptions: Iterable[dict[str, Any]], object_type: str, operation: str, obj: dict[str, Any],
    index: TargetIndex, bl_client_id: str,
) -> list[tuple[list[tuple[str, str | None]], bytes]]:
    """(callbacks, body) per subscription that should hear of this operation. A VEN's subscription hears of
    targeted programs and events it may read (its targets cut down to its grants) and of its own objects."""
    wanted = {operation, _HTTP_OF[operation]}
    object_targets = targets_of(obj)
    out: list[tuple[list[tuple[str, str | None]], bytes]] = []
    full: bytes | None = None
    for sub in subscriptions:
        callbacks = _callbacks(sub, object_type, wanted)
        if not callbacks or not _same_program(sub, object_type, obj):
            continue
        client = str(sub.get("clientID", ""))
        sub_targets = sub.get("targets") or None
        is_ven = client != bl_client_id
        if object_type in _PRIVATE:
            if is_ven and obj.get("clientID") != client:
                continue
            body = full = full or notification(object_type, operation, obj)
        elif is_ven:
            reading = effective(index.granted_to_client(client), sub_targets)
            if not visible(object_targets, reading, sub_targets is not None):
                continue
            body = notification(object_type, operation, hidden(obj, reading))
        else:
            if sub_targets is not None and object_targets.isdisjoint(sub_targets):
                continue
            body = full = full or notification(object_type, operation, obj)
        out.append((callbacks, body))
    return out


def _callbacks(sub: dict[str, Any], object_type: str, wanted: set[str]) -> list[tuple[str, str | None]]:
    out: list[tuple[str, str | None]] = []
    for op in sub.get("objectOperations") or ():
        objects = {str(o).upper() for o in op.get("objects") or ()}
        operations = {str(o).upper() for o in op.get("operations") or ()}
        operations |= {_OPERATION_ALIASES.get(o, o) for o in operations}
        if object_type in objects and operations & wanted:
            token = op.get("bearerToken")
            out.append((str(op["callbackUrl"]), token if isinstance(token, str) and token else None))
    return out


def _same_program(sub: dict[str, Any], object_type: str, obj: dict[str, Any]) -> bool:
    program = sub.get("programID")
    if not program:
        return True
    if object_type == "PROGRAM":
        return bool(obj.get("id") == program)
    if object_type == "EVENT":
        return bool(obj.get("programID") == program)
    return True
