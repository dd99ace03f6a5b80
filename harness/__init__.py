"""harness: a load-simulation harness for OpenADR 3 VTN servers.

Public surface: the profile, the session that runs it, and the outcome and results it produces.
"""

from __future__ import annotations

__version__ = "0.1.0"

__all__ = ["__version__", "Profile", "ProfileError", "RunSession", "Outcome", "Histogram"]


def __getattr__(name: str) -> object:
    # Lazy: importing harness must stay cheap and free of I/O modules for the pure core's users.
    if name in ("Profile", "ProfileError"):
        from harness.core import profile

        return getattr(profile, name)
    if name == "RunSession":
        from harness.run.session import RunSession

        return RunSession
    if name == "Outcome":
        from harness.sinks.base import Outcome

        return Outcome
    if name == "Histogram":
        from harness.core.histogram import Histogram

        return Histogram
    raise AttributeError(name)
