"""Units: durations and percentages as users type them."""

from __future__ import annotations

import pytest

from harness.core.units import format_duration, parse_duration, parse_percent


@pytest.mark.parametrize(
    ("text", "seconds"),
    [("500ms", 0.5), ("15s", 15.0), ("2m", 120.0), ("1h", 3600.0), ("1d", 86400.0), ("7", 7.0), ("250us", 0.00025), (3, 3.0)],
)
def test_parse_duration(text: str, seconds: float) -> None:
    """Each unit converts to seconds."""
    assert parse_duration(text) == pytest.approx(seconds)


@pytest.mark.parametrize("text", ["", "15 parsecs", "-1s", "s", "1.2.3s", True])
def test_parse_duration_rejects_with_named_message(text: object) -> None:
    """A bad duration is a ValueError naming the option and the value."""
    with pytest.raises(ValueError, match=r"--interval must be"):
        parse_duration(text, "--interval")  # type: ignore[arg-type]


def test_parse_percent() -> None:
    """`0.1%` and `0.001` mean the same fraction; junk is a named error."""
    assert parse_percent("0.1%") == pytest.approx(0.001)
    assert parse_percent("0.001") == pytest.approx(0.001)
    with pytest.raises(ValueError, match="errors must be a percentage"):
        parse_percent("lots", "errors")


def test_format_duration() -> None:
    """Durations print in the largest whole unit."""
    assert [format_duration(x) for x in (0.5, 15, 120, 3600)] == ["500ms", "15s", "2m", "1h"]
