"""A demand-response event the run's operator creates, as a profile's `[[dr_events]]` describe it.

Pure. Parsed in harness.core.profile; fired by harness.run.drevents; its targeted share comes from
harness.core.targeting.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DrEvent:
    """A demand-response event the operator creates during the run."""

    at_s: float  # run time at which the operator creates the event
    level: int = 2  # OpenADR SIMPLE level 0..3
    duration_s: float = 300.0
    notice_s: float = 0.0  # the event starts this long after it is created
    share: float = 1.0  # fraction of the fleet targeted (chosen from the seed)


def check(events: tuple[DrEvent, ...]) -> str | None:
    """What is wrong with the profile's DR events (None: nothing), naming the entry."""
    for i, e in enumerate(events):
        if not 0 <= e.level <= 3:
            return f"dr_events[{i}].level must be 0..3 (SIMPLE), got {e.level}"
        if not 0 < e.share <= 1:
            return f"dr_events[{i}].share must be in (0, 1], got {e.share}"
        if e.duration_s <= 0:
            return f"dr_events[{i}].duration must be > 0, got {e.duration_s}"
    return None
