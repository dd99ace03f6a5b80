"""CSV replay: parsing, linear interpolation, exact tick means, assignment to loads, error messages."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.fleet import LOAD_KINDS, FleetSpec, build_shard
from harness.core.replay import Replay, parse_csv, read_csv
from harness.meter import Meter

CSV = """timestamp,house,shop
2025-01-13T00:00:00Z,1.0,10
2025-01-13T00:10:00+00:00,2.0,10
2025-01-13T01:20:00+01:00,0.0,20
"""
T0 = 1_736_726_400.0  # 2025-01-13T00:00:00Z


def test_parses_rfc3339_with_zones() -> None:
    """RFC 3339 timestamps with Z or an offset become epoch seconds; columns become named curves."""
    c = parse_csv(CSV)
    assert c.names == ("house", "shop")
    assert c.times_s.tolist() == [T0, T0 + 600.0, T0 + 600.0 + 600.0]
    assert c.power_kw.tolist() == [[1.0, 10.0], [2.0, 10.0], [0.0, 20.0]]


def test_parses_epoch_seconds() -> None:
    """A numeric timestamp column is read as epoch seconds."""
    c = parse_csv(f"t,a\n{T0:.0f},1\n{T0 + 60:.1f},3\n")
    assert c.times_s.tolist() == [T0, T0 + 60.0]


def test_interpolates_linearly_and_holds_the_ends() -> None:
    """Between samples the value is linear; before the first and after the last it is held."""
    c = parse_csv(CSV)
    assert c.at(T0 + 300.0).tolist() == [1.5, 10.0]
    assert c.at(T0 + 900.0).tolist() == [1.0, 15.0]
    assert c.at(T0 - 1e6).tolist() == [1.0, 10.0]
    assert c.at(T0 + 1e6).tolist() == [0.0, 20.0]


def test_tick_mean_is_the_exact_integral() -> None:
    """mean_kw over an interval is the integral of the linear interpolant divided by its length."""
    c = parse_csv(CSV)
    # house over [0, 20 min): ramp 1->2 over 10 min (1.5 mean), then ramp 2->0 (1.0 mean) => 1.25
    assert c.mean_kw(T0, T0 + 1200.0)[0] == pytest.approx(1.25, rel=1e-12)
    # across the held start: 10 min at 1.0 before T0, then 5 min ramp 1->1.5 (mean 1.25)
    assert c.mean_kw(T0 - 600.0, T0 + 300.0)[0] == pytest.approx((600 * 1.0 + 300 * 1.25) / 900, rel=1e-12)
    assert c.mean_kw(T0 + 1200.0, T0 + 4800.0)[1] == pytest.approx(20.0, rel=1e-12)


def test_windows_line_ends_and_bom() -> None:
    """A CSV saved by a spreadsheet (BOM, CRLF) parses like a plain one."""
    c = parse_csv("\ufeff" + CSV.replace("\n", "\r\n"))
    assert c.names == ("house", "shop") and c.times_s.shape == (3,)


@settings(max_examples=60, deadline=None)
@given(st.lists(st.floats(min_value=-50.0, max_value=50.0), min_size=1, max_size=12),
       st.lists(st.floats(min_value=0.0, max_value=1.0), min_size=3, max_size=3))
def test_tick_means_add_up(values: list[float], cuts: list[float]) -> None:
    """Energy over [a, c) is energy over [a, b) plus [b, c), wherever a <= b <= c fall (inside or outside)."""
    text = "t,x\n" + "".join(f"{600 * i},{v}\n" for i, v in enumerate(values))
    c = parse_csv(text)
    span = 600.0 * (len(values) + 2)
    a, b, d = sorted(-1200.0 + span * x for x in cuts)
    if d - a < 1e-3 or b - a < 1e-6 or d - b < 1e-6:
        return
    whole = c.mean_kw(a, d)[0] * (d - a)
    parts = c.mean_kw(a, b)[0] * (b - a) + c.mean_kw(b, d)[0] * (d - b)
    assert whole == pytest.approx(parts, rel=1e-9, abs=1e-6)


def test_read_csv_from_path_and_stream(tmp_path: Path) -> None:
    """read_csv accepts a path (str or Path) or an open text stream and names the source in errors."""
    f = tmp_path / "curves.csv"
    f.write_text(CSV, encoding="utf-8")
    assert read_csv(f).names == ("house", "shop")
    assert read_csv(str(f)).names == ("house", "shop")
    assert read_csv(io.StringIO(CSV)).names == ("house", "shop")
    f.write_text("t,a\nnoon,1\n", encoding="utf-8")
    with pytest.raises(ValueError, match=f"replay: {f} row 2 column 't'"):
        read_csv(f)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "replay: <csv>: empty file, expected a header row"),
        ("timestamp\n1,2\n", "replay: <csv> row 1: need a timestamp column and at least one curve column"),
        ("t,a,\n1,2,3\n", "replay: <csv> row 1 column 3: empty curve name"),
        ("t,a,a\n1,2,3\n", "replay: <csv> row 1: duplicate curve name 'a'"),
        ("t,a\n", "replay: <csv>: no data rows after the header"),
        ("t,a\n1,2\n2\n", "replay: <csv> row 3: expected 2 columns, got 1"),
        ("t,a\n,2\n", "replay: <csv> row 2 column 't': empty timestamp"),
        ("t,a\nyesterday,2\n", "replay: <csv> row 2 column 't': timestamp must be RFC 3339 or epoch seconds, "
                               "got 'yesterday'"),
        ("t,a\n2025-01-13T00:00:00,2\n", "replay: <csv> row 2 column 't': timestamp needs a UTC offset"),
        ("t,a\n5,2\n5,3\n", "replay: <csv> row 3 column 't': timestamps must increase"),
        ("t,a\n5,2\n6,x\n", "replay: <csv> row 3 column 'a': expected a number \\(kW\\), got 'x'"),
        ("t,a\n5,nan\n", "replay: <csv> row 2 column 'a': expected a finite number \\(kW\\), got 'nan'"),
    ],
)
def test_bad_csv_names_the_row_and_column(text: str, message: str) -> None:
    """Each malformed CSV fails with a one-line ValueError naming the row and column."""
    with pytest.raises(ValueError, match=message) as info:
        parse_csv(text)
    assert "\n" not in str(info.value)


def test_replay_validates_its_mapping() -> None:
    """An unknown load kind or curve name in the mapping is refused."""
    c = parse_csv(CSV)
    with pytest.raises(ValueError, match="replay: by_kind key must be one of base, .*got 'fridge'"):
        Replay(c, by_kind={"fridge": "house"})
    with pytest.raises(ValueError, match=r"replay: by_kind\['base'\] names no curve in the CSV, got 'barn'"):
        Replay(c, by_kind={"base": "barn"})
    with pytest.raises(ValueError, match=r"replay: by_load_id\[7\] names no curve in the CSV, got 'barn'"):
        Replay(c, by_load_id={7: "barn"})


def test_meter_replays_assigned_loads() -> None:
    """Loads assigned by kind or by id read the curve's tick means; energy is the curve's exact integral."""
    shard = build_shard(FleetSpec(vens=20), 1, 0, 20)
    base = shard.load_kind == LOAD_KINDS.index("base")
    one_light = int(np.flatnonzero(shard.load_kind == LOAD_KINDS.index("lighting"))[3])
    replay = Replay(parse_csv(CSV), by_kind={"base": "house"}, by_load_id={int(shard.load_id[one_light]): "shop"})
    plain = Meter(shard, 1, T0, 60.0)
    m = Meter(shard, 1, T0, 60.0, replay=replay)
    for k in range(1, 31):
        plain.advance_to(T0 + 60.0 * k)
        m.advance_to(T0 + 60.0 * k)
        want = replay.curves.mean_kw(T0 + 60.0 * (k - 1), T0 + 60.0 * k)
        np.testing.assert_allclose(m.power_kw[base], want[0], rtol=1e-6)
        assert m.power_kw[one_light] == pytest.approx(want[1], rel=1e-6)
    other = ~base
    other[one_light] = False
    assert np.array_equal(m.energy_kwh[other], plain.energy_kwh[other])
    np.testing.assert_allclose(m.energy_kwh[base], replay.curves.integral_kwh(T0 + 1800.0)[0], rtol=1e-6)


def test_scale_to_rated() -> None:
    """With scale_to_rated a curve's peak maps to each load's rated power."""
    shard = build_shard(FleetSpec(vens=5), 1, 0, 5)
    base = shard.load_kind == LOAD_KINDS.index("base")
    m = Meter(shard, 1, T0 + 3 * 3600.0, 60.0,
              replay=Replay(parse_csv(CSV), by_kind={"base": "shop"}, scale_to_rated=True))
    m.advance_to(T0 + 3 * 3600.0 + 60.0)
    np.testing.assert_allclose(m.power_kw[base], shard.load_rated_kw[base], rtol=1e-6)
