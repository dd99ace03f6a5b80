"""Generator health end to end: one worker offered far more than it can send is invalid (exit 3); far less passes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.core.profile import Profile
from harness.core.exits import EXIT_INVALID, EXIT_PASS
from harness.run.session import RunSession
from harness.vtn import EmbeddedVtn, VtnConfig


@pytest.fixture(scope="module")
def null_vtn() -> Iterator[EmbeddedVtn]:
    with EmbeddedVtn(VtnConfig(null=True)) as vtn:
        yield vtn


def run(url: str, out: Path, vens: int, interval_s: float, duration_s: float) -> tuple[int, str, list[str]]:
    p = Profile(name="overload", target=url, vens=vens, interval_s=interval_s, duration_s=duration_s, workers=1,
                connection="pooled", pool_size=64, timeout_s=2.0, drain_s=1.0, seed=4)
    outcome = RunSession(p, out).run()
    return outcome.exit_code, outcome.verdict, list(outcome.summary["reasons"])


def test_a_rate_one_worker_cannot_sustain_is_invalid_with_exit_3(null_vtn: EmbeddedVtn, tmp_path: Path) -> None:
    """100,000 reports/s offered to one worker (~20x what it can send): verdict invalid, exit 3, 'generator saturated'."""
    code, verdict, reasons = run(null_vtn.url, tmp_path, vens=50_000, interval_s=0.5, duration_s=6.0)
    assert (code, verdict) == (EXIT_INVALID, "invalid")
    assert any(r.startswith("generator saturated: worker 0") for r in reasons), reasons


def test_the_same_run_at_a_sustainable_rate_passes(null_vtn: EmbeddedVtn, tmp_path: Path) -> None:
    """100 reports/s offered to the same worker (a few % of what it can send): verdict pass, exit 0, no reasons."""
    code, verdict, reasons = run(null_vtn.url, tmp_path, vens=100, interval_s=1.0, duration_s=6.0)
    assert (code, verdict, reasons) == (EXIT_PASS, "pass", [])
