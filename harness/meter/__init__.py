"""Simulated metering of a fleet shard (power and energy per load), with weather, EV, PV, batteries and DR.

Pure core: stdlib + numpy; callers pass simulated time in; readings are keyed by (seed, global id, tick).
"""

from __future__ import annotations

from harness.meter.dr import SIMPLE_LEVEL_SHED, simple_level_shed
from harness.meter.model import Meter
from harness.meter.weather import Climate

__all__ = ["SIMPLE_LEVEL_SHED", "Climate", "Meter", "simple_level_shed"]
