"""The one message for a key a table does not know: what was written, the closest known keys, a short list.

Pure. `unknown_key("fleet.vnes", known)` -> "unknown key 'fleet.vnes' - did you mean 'fleet.vens'? (fleet keys:
fleet.kinds, fleet.mix, fleet.vens, ...)" — never every key of the profile in one line.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable

SHOWN = 8  # keys listed at most when nothing is close


def unknown_key(key: str, known: Iterable[str]) -> str:
    """One line: the unknown key, up to two close matches, and the known keys of its own table (at most SHOWN)."""
    known = sorted(set(known))
    section, _, last = key.rpartition(".")
    peers = {k.rpartition(".")[2]: k for k in known if k.rpartition(".")[0] == section}
    if peers:  # a misspelled last part: compared with the last parts of its own table's keys (a shared prefix is no match)
        close = [peers[m] for m in difflib.get_close_matches(last, list(peers), n=2, cutoff=0.75)]
    else:  # a misspelled table name
        close = difflib.get_close_matches(key, known, n=2, cutoff=0.75)
    same = [k for k in known if k.rpartition(".")[0] == section] or known
    listed = ", ".join(same[:SHOWN]) + (f", ... ({len(same) - SHOWN} more)" if len(same) > SHOWN else "")
    where = f"{section} keys" if section and same is not known else "known keys"
    hint = f" - did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
    return f"unknown key {key!r}{hint} ({where}: {listed})"
