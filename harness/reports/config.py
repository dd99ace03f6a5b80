"""The run report's configuration section, last on the page: the run's manifest, versions, machine and every profile
setting, nested settings (DR events, faults, stages, target settings) as their own small tables, never a dict dump.

Edge (strings only).
"""

from __future__ import annotations

from typing import Any

from harness.reports.kit import esc, fmt_num, generic_table, kv, setting

GENERAL = ("name", "target", "embedded_vtn", "seed", "workers", "target_report_rate_per_s", "started_at", "t0",
           "ended_at", "program_id", "event_id")
KNOWN = {*GENERAL, "versions", "machine", "notes", "profile"}


def section_configuration(summary: dict[str, Any]) -> str:
    run = summary.get("run", {}) or {}
    general = [(k.replace("_", " "), setting(k, run[k])) for k in GENERAL if k in run]
    general.append(("measured", f"{fmt_num(summary.get('measured_s'))} s"))
    warm = summary.get("warmup", {}) or {}
    if warm.get("seconds"):
        general.append(("warm-up", f"first {fmt_num(warm['seconds'])} s excluded from the totals"))
    general += [(k.replace("_", " "), setting(k, v)) for k, v in run.items() if k not in KNOWN and _is_flat(v)]
    versions = [(k, setting(k, v)) for k, v in (run.get("versions") or {}).items()]
    machine = [(k, setting(k, v)) for k, v in (run.get("machine") or {}).items()]
    prof = run.get("profile") or {}
    flat = [(k, setting(k, v)) for k, v in prof.items() if _is_flat(v)]
    half = (len(flat) + 1) // 2
    pairs = [x for a, b in zip(flat[:half], flat[half:] + [("", "")]) for x in (a, b)]
    nested = "".join(_nested(k, v) for k, v in prof.items() if not _is_flat(v))
    notes = run.get("notes") or []
    notes_html = ("<h3>Notes</h3><ul>" + "".join(f"<li>{esc(n)}</li>" for n in notes) + "</ul>") if notes else ""
    return (
        '<section id="sec-run"><h2>Configuration</h2><div class="cols">'
        f"<div><h3>Run</h3>{kv(general)}</div>"
        f"<div><h3>Versions</h3>{kv(versions)}<h3>Machine</h3>{kv(machine)}</div></div>"
        + (f'<h3>Profile settings</h3>{kv(pairs, "kv settings")}' if flat else "")
        + nested + notes_html + "</section>"
    )


def _is_flat(v: Any) -> bool:
    """A value shown in one cell: a scalar, a list of scalars or pairs (a mix), an empty table."""
    if isinstance(v, dict):
        return not v
    if isinstance(v, (list, tuple)):
        return all(not isinstance(x, dict) for x in v)
    return True


def _nested(key: str, value: Any) -> str:
    """A table setting (target_settings) as its own key/value list; a list of tables (dr_events) as a table."""
    title = f"<h3>{esc(key.replace('_', ' '))}</h3>"
    if isinstance(value, dict):
        return title + kv([(k, setting(str(k), v)) for k, v in value.items()], "kv settings")
    rows = [x for x in value if isinstance(x, dict)]
    return title + generic_table(rows, f"setting-{key.replace('_', '-')}")
