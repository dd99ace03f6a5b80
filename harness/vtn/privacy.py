"""OpenADR 3.1.0 object privacy: the targets business logic grants each VEN, and who may see a targeted object.

Pure (no I/O). A VEN client is granted the targets of its ven records (matched by clientID) and of their
resources; it sees a program or event that is untargeted or shares one of those targets, and a response
shows it only the targets it was granted ("target hiding", Definition §Object Privacy).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any, Collection, Iterable

EMPTY: frozenset[str] = frozenset()


def targets_of(obj: dict[str, Any]) -> frozenset[str]:
    """An object's targets as a set (null, absent or non-string entries count as none)."""
    raw = obj.get("targets")
    if not isinstance(raw, list):
        return EMPTY
    return frozenset(t for t in raw if isinstance(t, str))


def effective(granted: frozenset[str], requested: Collection[str] | None) -> frozenset[str]:
    """The targets a VEN reads with: its grants, narrowed to the `targets` query when it gives one."""
    return granted if requested is None else granted & frozenset(requested)


def visible(object_targets: frozenset[str], reading: frozenset[str], requested: bool) -> bool:
    """May a VEN reading with `reading` targets see an object? Untargeted objects are public unless the request
    filtered by targets (then only objects carrying a requested, granted target match)."""
    if not object_targets:
        return not requested
    return not object_targets.isdisjoint(reading)


def hidden(obj: dict[str, Any], reading: frozenset[str]) -> dict[str, Any]:
    """The object as a VEN sees it: its targets cut down to the ones the VEN reads with (order kept)."""
    raw = obj.get("targets")
    if not isinstance(raw, list) or not raw:
        return obj
    return {**obj, "targets": [t for t in raw if t in reading]}


class TargetIndex:
    """VEN records and resources by id, with their targets, kept in step with every write; answers which
    targets a client was granted and which VENs a targeted object reaches."""

    def __init__(self) -> None:
        self._ven_client: dict[str, str] = {}  # venID -> clientID
        self._ven_targets: dict[str, frozenset[str]] = {}
        self._client_vens: dict[str, set[str]] = defaultdict(set)
        self._resources: dict[str, tuple[str, frozenset[str]]] = {}  # resourceID -> (venID, targets)
        self._ven_resources: dict[str, set[str]] = defaultdict(set)
        self._granted: dict[str, frozenset[str]] = {}  # venID -> own targets | its resources' targets
        self._by_target: dict[str, set[str]] = defaultdict(set)  # target -> venIDs granted it

    def __len__(self) -> int:
        return len(self._ven_client)

    # ---- writes ---------------------------------------------------------------------------------------

    def put_ven(self, ven_id: str, client_id: str, targets: frozenset[str]) -> None:
        old_client = self._ven_client.get(ven_id)
        if old_client is not None and old_client != client_id:
            self._client_vens[old_client].discard(ven_id)
        self._ven_client[ven_id] = client_id
        self._client_vens[client_id].add(ven_id)
        self._ven_targets[ven_id] = targets
        self._regrant(ven_id)

    def drop_ven(self, ven_id: str) -> None:
        client = self._ven_client.pop(ven_id, None)
        if client is None:
            return
        self._client_vens[client].discard(ven_id)
        if not self._client_vens[client]:
            del self._client_vens[client]
        self._ven_targets.pop(ven_id, None)
        for rid in self._ven_resources.pop(ven_id, set()):
            self._resources.pop(rid, None)
        for t in self._granted.pop(ven_id, EMPTY):
            self._unmap(t, ven_id)

    def put_resource(self, resource_id: str, ven_id: str, targets: frozenset[str]) -> None:
        old = self._resources.get(resource_id)
        self._resources[resource_id] = (ven_id, targets)
        self._ven_resources[ven_id].add(resource_id)
        if old is not None and old[0] != ven_id:
            self._ven_resources[old[0]].discard(resource_id)
            self._regrant(old[0])
        self._regrant(ven_id)

    def drop_resource(self, resource_id: str) -> None:
        old = self._resources.pop(resource_id, None)
        if old is not None:
            self._ven_resources[old[0]].discard(resource_id)
            self._regrant(old[0])

    def _regrant(self, ven_id: str) -> None:
        if ven_id not in self._ven_client:
            return  # a resource of a VEN not (yet) indexed grants nothing
        new = self._ven_targets.get(ven_id, EMPTY).union(
            *(self._resources[r][1] for r in self._ven_resources.get(ven_id, ())))
        old = self._granted.get(ven_id, EMPTY)
        for t in old - new:
            self._unmap(t, ven_id)
        for t in new - old:
            self._by_target[t].add(ven_id)
        self._granted[ven_id] = new

    def _unmap(self, target: str, ven_id: str) -> None:
        vens = self._by_target.get(target)
        if vens is not None:
            vens.discard(ven_id)
            if not vens:
                del self._by_target[target]

    # ---- reads ----------------------------------------------------------------------------------------

    def client_of(self, ven_id: str) -> str | None:
        return self._ven_client.get(ven_id)

    def granted(self, ven_id: str) -> frozenset[str]:
        return self._granted.get(ven_id, EMPTY)

    def granted_to_client(self, client_id: str) -> frozenset[str]:
        """Every target granted to any ven record of this client (and to those records' resources)."""
        vens = self._client_vens.get(client_id, ())
        return EMPTY.union(*(self._granted.get(v, EMPTY) for v in vens))

    def vens_of(self, client_id: str) -> Iterable[str]:
        return tuple(self._client_vens.get(client_id, ()))

    def reached(self, object_targets: frozenset[str]) -> list[str]:
        """The VENs that see an object with these targets: all of them when it is untargeted (a snapshot list,
        so later writes cannot change an iteration in progress)."""
        if not object_targets:
            return list(self._ven_client)
        out: set[str] = set()
        for t in object_targets:
            out |= self._by_target.get(t, set())
        return sorted(out, key=_id_order)


def _id_order(ven_id: str) -> tuple[int, str]:
    """VTN ids are `ven-<n>`: publish in creation order, which keeps runs reproducible."""
    _, _, n = ven_id.rpartition("-")
    return (int(n), "") if n.isdigit() else (-1, ven_id)
