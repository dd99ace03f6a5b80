"""Report bodies from a template per shape: the dialect's own JSON with only the numbers and names written anew.

Pure (orjson; no I/O). Building a report as nested dicts, encoding it and freeing it again cost a saturated
worker ~6 us a report. A shape (the number of a VEN's sites) is rendered once by the dialect with probe values;
the places where the VEN's name, the interval's start and duration, the ledger key and each site's energy and
power appear become the slots of a %-format string, and each number's rounding is read from how the dialect
printed its probe. The template is kept only if it reproduces the dialect's bytes exactly for a second probe
with other names and numbers; a dialect whose output it cannot reproduce (a field that depends on a value,
numbers it prints its own way) keeps its own path (render returns None), and so does a report with a value JSON
cannot hold as a number (NaN, infinity) or a name that would need escaping.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import orjson

from harness.core.delivery import tag_body
from harness.core.fleet import site_name
from harness.dialects import Dialect, Site

NAME, START, DURATION, KEY = "QQvenQQ", "QQstartQQ", "QQdurQQ", "QQkeyQQ"
NAME2, START2, DURATION2, KEY2 = "ZZnameZZ", "ZZfromZZ", "ZZforZZ", "ZZtagZZ"
DIGITS = (None, *range(12, 0, -1))  # how a dialect may round a number: not at all, or to k decimals


def _probe(i: int, kind: int, second: bool) -> float:
    """A probe number of site i (kind 0: energy, 1: power) unlike any other in the body, with 13 decimals."""
    return (2 * i + kind + 1) * (1000.0 if not second else 3000.0) + (0.1234567890123 if not second else 0.9876543210987)


class Template:
    """One shape's body as a %-format string (strings as %s, each number as the dialect rounds it: %.<k>f, or %r
    unrounded) and the function that orders the values for it."""

    __slots__ = ("fmt", "slots", "path", "tagged", "_args")

    def __init__(self, fmt: str, slots: list[tuple[str, int, int | None]], path: str, tagged: bool) -> None:
        self.fmt, self.slots, self.path, self.tagged = fmt, slots, path, tagged
        # The values in slot order, by one generated expression (a loop over the slots cost ~3 us a report).
        order = ", ".join({"n": "n", "s": "s", "d": "d", "k": "k"}.get(kind, f"{kind}[{i}]") for kind, i, _ in slots)
        self._args: Callable[..., tuple[Any, ...]] = eval(f"lambda n, s, d, k, e, p: ({order},)", {})  # noqa: S307

    def render(self, name: str, start: str, duration: str, key: str, energy: list[float], power: list[float]) -> bytes | None:
        if not math.isfinite(sum(energy) + sum(power)):
            return None  # JSON has no NaN or infinity: the dialect's own path (orjson writes null)
        # '%.6f' is the decimal round(x, 6) is nearest to: the same number as the dialect's, maybe with zeros after
        return (self.fmt % self._args(name, start, duration, key, energy, power)).encode()


class ReportTemplates:
    """The templates of one dialect's single-POST reports, by number of sites (None: the dialect's own path)."""

    def __init__(self, dialect: Dialect, program_id: str, event_id: str, granularity: str, tag: bool) -> None:
        self._build: Callable[[str, list[Site], str, str], Any] = lambda name, sites, start, duration: dialect.reports(
            program_id, event_id, name, sites, None, start, duration, granularity)
        self._single = granularity in ("ven", "resource")  # one POST for the VEN ("resource": with one site)
        self._granularity = granularity
        self._tag = tag
        self._shapes: dict[int, Template | None] = {}

    def get(self, n_sites: int) -> Template | None:
        if n_sites in self._shapes:
            return self._shapes[n_sites]
        t = None
        if self._single and (self._granularity == "ven" or n_sites == 1):
            try:
                t = self._make(n_sites)
            except Exception:  # a dialect that cannot build a probe report keeps its own path
                t = None
        self._shapes[n_sites] = t
        return t

    def _body(self, n: int, name: str, start: str, duration: str, key: str, second: bool) -> tuple[bytes, str, bool]:
        sites = [Site(site_name(name, i), _probe(i, 0, second), _probe(i, 1, second)) for i in range(n)]
        reqs = self._build(name, sites, start, duration)
        if len(reqs) != 1 or reqs[0].method != "POST" or reqs[0].json is None or reqs[0].form is not None:
            raise ValueError("not one JSON POST")
        tagged = self._tag and tag_body(reqs[0].json, key)
        return orjson.dumps(reqs[0].json), reqs[0].path, tagged

    def _make(self, n: int) -> Template | None:
        out, path, tagged = self._body(n, NAME, START, DURATION, KEY, second=False)
        text = out.decode()
        marks: list[tuple[int, int, tuple[str, int, int | None]]] = []
        for word, kind in ((NAME, "n"), (START, "s"), (DURATION, "d"), (KEY, "k")):
            at = text.find(word)
            while at >= 0:
                marks.append((at, len(word), (kind, 0, None)))
                at = text.find(word, at + len(word))
        for i in range(n):
            for kind, k in (("e", 0), ("p", 1)):
                x = _probe(i, k, False)
                found = [(d, s) for d in DIGITS if text.count(s := repr(x if d is None else round(x, d))) == 1]
                if not found:
                    return None
                digits, s = found[0]
                marks.append((text.find(s), len(s), (kind, i, digits)))
        marks.sort()
        fmt, slots, pos = [], [], 0
        for at, size, slot in marks:
            if at < pos:
                return None  # overlapping marks: not a body this can reproduce
            fmt.append(text[pos:at].replace("%", "%%"))
            fmt.append("%s" if slot[0] in "nsdk" else "%r" if slot[2] is None else f"%.{slot[2]}f")
            slots.append(slot)
            pos = at + size
        fmt.append(text[pos:].replace("%", "%%"))
        t = Template("".join(fmt), slots, path, tagged)
        # Kept only if it writes the dialect's own bytes for other names and numbers too.
        out2, path2, _ = self._body(n, NAME2, START2, DURATION2, KEY2, second=True)
        e2 = [_probe(i, 0, True) for i in range(n)]
        p2 = [_probe(i, 1, True) for i in range(n)]
        return t if path2 == path and t.render(NAME2, START2, DURATION2, KEY2, e2, p2) == out2 else None


def plain(name: str) -> bool:
    """A name JSON holds as is (no escaping): what a template may write between quotes."""
    return name.isascii() and name.isprintable() and '"' not in name and "\\" not in name
