"""What every sink is told by the supervisor: the Snapshot of a run as it stands, and the View protocol.

Edge seam (plain data and a Protocol; rendering and writing live in the sinks that implement it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

from harness.core.profile import Profile
from harness.core.results import RunResults


class View(Protocol):
    """What the supervisor tells the live view (rich on a TTY, plain lines otherwise)."""

    def update(self, snap: Snapshot) -> None: ...
    def close(self) -> None: ...


class NullView:
    def update(self, snap: Snapshot) -> None:
        pass

    def close(self) -> None:
        pass


@dataclass
class Snapshot:
    profile: Profile
    results: RunResults
    elapsed_s: float
    phase: str  # starting | running | draining | done
    target: str
    notes: list[str] = field(default_factory=list)
