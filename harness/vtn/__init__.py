"""The embedded OpenADR VTN: 3.0.1 and 3.1.0 on aiohttp + SQLite, OAuth2 scopes, object privacy, webhooks,
MQTT notifications through a broker it is given or starts (`Broker`), fault injection.

Edge. `EmbeddedVtn` runs it in a spawned child (the parent creates no loop); `serve` runs it in this process;
`make_app` gives the aiohttp application for tests.
"""

from __future__ import annotations

from harness.vtn.app import make_app
from harness.vtn.broker import Broker, BrokerError
from harness.vtn.config import VtnConfig
from harness.vtn.faults import Delay, Faults, Stall, parse_faults
from harness.vtn.process import EmbeddedVtn, serve

__all__ = ["Broker", "BrokerError", "Delay", "EmbeddedVtn", "Faults", "Stall", "VtnConfig", "make_app", "parse_faults",
           "serve"]
