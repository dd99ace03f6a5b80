"""Object privacy (pure): grants from ven and resource records, who a targeted object reaches, target hiding."""

from __future__ import annotations

from harness.vtn import topics
from harness.vtn.fanout import mqtt_messages
from harness.vtn.privacy import TargetIndex, effective, hidden, visible


def test_grants_follow_ven_and_resource_records() -> None:
    """A VEN is granted its record's and its resources' targets; moving or dropping them takes them back."""
    ix = TargetIndex()
    ix.put_ven("ven-1", "c1", frozenset({"g1"}))
    ix.put_ven("ven-2", "c2", frozenset())
    ix.put_resource("res-1", "ven-2", frozenset({"r1"}))
    assert (ix.granted("ven-1"), ix.granted("ven-2")) == ({"g1"}, {"r1"})
    assert ix.reached(frozenset({"g1", "r1"})) == ["ven-1", "ven-2"]
    assert ix.reached(frozenset({"nobody"})) == []
    assert ix.reached(frozenset()) == ["ven-1", "ven-2"]  # untargeted: everyone
    ix.put_resource("res-1", "ven-1", frozenset({"r1"}))
    assert (ix.granted("ven-1"), ix.granted("ven-2")) == ({"g1", "r1"}, frozenset())
    ix.drop_resource("res-1")
    assert ix.reached(frozenset({"r1"})) == []
    ix.put_ven("ven-3", "c1", frozenset({"g3"}))  # a second record of the same client
    assert ix.granted_to_client("c1") == {"g1", "g3"}
    ix.drop_ven("ven-1")
    assert ix.granted_to_client("c1") == {"g3"} and ix.reached(frozenset({"g1"})) == []
    ix.put_ven("ven-3", "c9", frozenset({"g3"}))  # business logic hands the record to another client
    assert ix.granted_to_client("c1") == frozenset() and ix.client_of("ven-3") == "c9"


def test_visibility_and_hiding() -> None:
    """Untargeted is public unless the request filters by targets; a VEN sees only targets it was granted."""
    granted = frozenset({"a", "b"})
    assert visible(frozenset(), granted, requested=False) and not visible(frozenset(), granted, requested=True)
    assert visible(frozenset({"b", "z"}), granted, False) and not visible(frozenset({"z"}), granted, False)
    assert effective(granted, ["b", "z"]) == {"b"} and effective(granted, None) == granted
    assert hidden({"id": "e", "targets": ["z", "b", "a"]}, granted) == {"id": "e", "targets": ["b", "a"]}
    assert hidden({"id": "e", "targets": None}, granted) == {"id": "e", "targets": None}


def test_every_published_topic_is_advertised() -> None:
    """Each topic the VTN publishes on matches the topic listing (or its ALL wildcard) of an endpoint."""
    ix = TargetIndex()
    ix.put_ven("ven-1", "c1", frozenset({"g"}))
    advertised = [topics.listing(topics.programs()), topics.listing(topics.program("prg-1"), create=False),
                  topics.listing(topics.events()), topics.listing(topics.program_events("prg-1")),
                  topics.listing(topics.reports()), topics.listing(topics.subscriptions()),
                  topics.listing(topics.vens()), topics.listing(topics.resources()),
                  topics.listing(topics.ven("ven-1"), create=False), topics.listing(topics.ven_events("ven-1")),
                  topics.listing(topics.ven_programs("ven-1")), topics.listing(topics.ven_resources("ven-1"))]
    names = {t for listing in advertised for op, t in listing.items() if op != "ALL"}
    objects = {"PROGRAM": {"id": "prg-1"}, "EVENT": {"id": "evt-1", "programID": "prg-1", "targets": ["g"]},
               "REPORT": {"id": "rpt-1"}, "SUBSCRIPTION": {"id": "sub-1"}, "VEN": {"id": "ven-1"},
               "RESOURCE": {"id": "res-1", "venID": "ven-1"}}
    published = {m.topic for kind, obj in objects.items() for op in topics.OPERATIONS
                 for m in mqtt_messages(kind, op, obj, ix)}
    assert published - names == set()
    assert "vens/ven-1/events/create" in published and "programs/prg-1/update" in published
