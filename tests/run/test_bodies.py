"""Report bodies from templates: the same JSON as the dialect's own, for every dialect, shape and value."""

from __future__ import annotations

import math
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from harness.core.delivery import tag_body
from harness.core.fleet import site_name
from harness.dialects import Request, Site, get, names
from harness.run.bodies import ReportTemplates, plain

finite = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
name = st.text(alphabet="abcdefghijklmnopqrstuvwxyz0123456789-_. ", min_size=1, max_size=24)
stamp = st.text(alphabet="0123456789-:TZPHMS.", min_size=1, max_size=30)
CASES = [(d, g, tag) for d in names() for g in ("ven", "resource") for tag in (False, True)]


def dialect_body(dialect: str, granularity: str, tag: bool, ven: str, energy: list[float], power: list[float],
                 start: str, duration: str, key: str) -> Any:
    sites = [Site(site_name(ven, i), e, p) for i, (e, p) in enumerate(zip(energy, power))]
    reqs = get(dialect).reports("prog-1", "ev-2", ven, sites, None, start, duration, granularity)
    assert len(reqs) == 1
    if tag:
        tag_body(reqs[0].json, key)
    return orjson.loads(orjson.dumps(reqs[0].json))


@settings(max_examples=60, deadline=None)
@given(case=st.sampled_from(CASES), n=st.integers(1, 3), ven=name, start=stamp, duration=stamp,
       values=st.lists(finite, min_size=6, max_size=6), seq=st.integers(0, 10**6))
def test_a_template_writes_the_dialects_own_json_for_any_names_and_numbers(
        case: tuple[str, str, bool], n: int, ven: str, start: str, duration: str, values: list[float], seq: int) -> None:
    dialect, granularity, tag = case
    t = ReportTemplates(get(dialect), "prog-1", "ev-2", granularity, tag).get(n)
    if t is None:
        return  # this dialect and shape keep the dialect's own path
    energy, power = values[:n], values[3 : 3 + n]
    key = f"hr1:run:{seq}:{seq + 1}"
    body = t.render(ven, start, duration, key if t.tagged else "", energy, power)
    assert body is not None
    assert orjson.loads(body) == dialect_body(dialect, granularity, t.tagged, ven, energy, power, start, duration, key)


def test_the_common_shapes_have_templates_and_tags_where_the_dialect_names_its_reports() -> None:
    for dialect in ("openadr-3.0.1", "openadr-3.1.0"):
        ven_tagged = ReportTemplates(get(dialect), "1", "2", "ven", tag=True)
        assert all(ven_tagged.get(n) is not None and ven_tagged.get(n).tagged for n in (1, 2, 5))  # type: ignore[union-attr]
        resource = ReportTemplates(get(dialect), "1", "2", "resource", tag=False)
        assert resource.get(1) is not None and resource.get(2) is None  # two sites: two POSTs, not one template
        assert ReportTemplates(get(dialect), "1", "2", "load", tag=False).get(1) is None


def test_a_value_json_cannot_hold_and_a_name_needing_escapes_keep_the_dialects_path() -> None:
    t = ReportTemplates(get("openadr-3.0.1"), "1", "2", "ven", tag=False).get(1)
    assert t is not None
    assert t.render("ven-1", "s", "d", "", [math.nan], [1.0]) is None
    assert t.render("ven-1", "s", "d", "", [1.0], [math.inf]) is None
    assert plain("ven-0000001") and not plain('ven"1') and not plain("ven\\1") and not plain("vén") and not plain("v\n")


def test_a_dialect_whose_body_depends_on_its_values_gets_no_template() -> None:
    """A body that leaves out a zero reading is not one a template can reproduce: the second probe tells."""
    class Skipping:
        def reports(self, program_id: str, event_id: str, client_name: str, sites: list[Site], loads: Any, start: str,
                    duration: str, granularity: str) -> list[Request]:
            readings = [{"n": s.name, "e": round(s.energy_kwh, 3)} for s in sites if s.energy_kwh < 2000]
            return [Request("POST", "/reports", json={"name": client_name, "readings": readings, "at": start})]

    assert ReportTemplates(Skipping(), "1", "2", "ven", tag=False).get(1) is None  # type: ignore[arg-type]
