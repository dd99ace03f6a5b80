"""The embedded VTN's MQTT topic names: what `/notifiers/mqtt/topics/...` advertises and where it publishes.

Pure; the one source of truth for both, so the VTN never publishes where it did not advertise. Names follow
the 3.1.0 document's examples (`programs/create`, ALL = `programs/+`); an object's own topics have no CREATE
(nobody can subscribe to an id before it exists); VEN-specific topics live under `vens/{venID}/`.
"""

from __future__ import annotations

from typing import Iterator, NamedTuple

OPERATIONS = ("CREATE", "UPDATE", "DELETE")


class Message(NamedTuple):
    """One notification to publish."""

    topic: str
    payload: bytes
    family: str  # the topic with ids as placeholders (`vens/{venID}/events/create`), for counting
    ven_id: str | None  # set on VEN-specific topics
    resend: bool = False  # sent before, unacknowledged when the broker lost the session


def listing(base: str, *, create: bool = True) -> dict[str, str]:
    """A notifierOperationsTopics object: one topic per operation under `base`, and ALL as a `+` wildcard."""
    topics = {op: f"{base}/{op.lower()}" for op in OPERATIONS if create or op != "CREATE"}
    topics["ALL"] = f"{base}/+"
    return topics


# Topic bases, by the endpoint that advertises them (the same functions name where notifications go).
def programs() -> str:
    return "programs"


def program(program_id: str) -> str:
    return f"programs/{program_id}"


def events() -> str:
    return "events"


def program_events(program_id: str) -> str:
    return f"programs/{program_id}/events"


def reports() -> str:
    return "reports"


def subscriptions() -> str:
    return "subscriptions"


def vens() -> str:
    return "vens"


def ven(ven_id: str) -> str:
    return f"vens/{ven_id}"


def resources() -> str:
    return "resources"


def ven_events(ven_id: str) -> str:
    return f"vens/{ven_id}/events"


def ven_programs(ven_id: str) -> str:
    return f"vens/{ven_id}/programs"


def ven_resources(ven_id: str) -> str:
    return f"vens/{ven_id}/resources"


def fleet_topics(object_type: str, operation: str, obj: dict[str, object]) -> Iterator[tuple[str, str]]:
    """(topic, family) of every topic that is not VEN-specific for this operation on this object; the family
    is the topic with its ids as placeholders (`programs/{programID}/events/create`), for counting."""
    op = operation.lower()
    oid = str(obj.get("id", ""))
    if object_type == "PROGRAM":
        yield f"programs/{op}", f"programs/{op}"
        if operation != "CREATE":
            yield f"{program(oid)}/{op}", f"programs/{{programID}}/{op}"
    elif object_type == "EVENT":
        yield f"events/{op}", f"events/{op}"
        yield f"{program_events(str(obj.get('programID', '')))}/{op}", f"programs/{{programID}}/events/{op}"
    elif object_type == "REPORT":
        yield f"reports/{op}", f"reports/{op}"
    elif object_type == "SUBSCRIPTION":
        yield f"subscriptions/{op}", f"subscriptions/{op}"
    elif object_type == "VEN":
        yield f"vens/{op}", f"vens/{op}"
    elif object_type == "RESOURCE":
        yield f"resources/{op}", f"resources/{op}"


def ven_topic(object_type: str, operation: str, ven_id: str) -> tuple[str, str] | None:
    """(topic, family) of the VEN-specific topic for this operation, or None when the object type has none
    (a VEN's own record has UPDATE and DELETE topics; programs, events and resources have all three)."""
    op = operation.lower()
    if object_type == "EVENT":
        return f"{ven_events(ven_id)}/{op}", f"vens/{{venID}}/events/{op}"
    if object_type == "PROGRAM":
        return f"{ven_programs(ven_id)}/{op}", f"vens/{{venID}}/programs/{op}"
    if object_type == "RESOURCE":
        return f"{ven_resources(ven_id)}/{op}", f"vens/{{venID}}/resources/{op}"
    if object_type == "VEN" and operation != "CREATE":
        return f"{ven(ven_id)}/{op}", f"vens/{{venID}}/{op}"
    return None
