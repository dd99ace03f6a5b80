"""A profile's replay CSV, read once at run set-up: the curves and which loads they drive, for every shard's spec.

Edge (reads one file). A missing or bad file, or a mapping that names no curve, is a one-line ProfileError naming
`fleet.replay` before anything starts.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

from harness.core.exits import ProfileError
from harness.core.profile import Profile
from harness.core.replay import Replay, ReplaySpec, parse_csv


def load_replay(p: Profile) -> tuple[Replay | None, float | None]:
    """(the Replay, where simulated time starts) for the profile; (None, None) without fleet.replay."""
    spec = p.replay
    if spec is None:
        return None, None
    path = Path(spec.file)
    try:
        st = path.stat()
    except FileNotFoundError:
        hint = "" if path.is_absolute() else f" (relative paths start at {os.getcwd()})"
        raise ProfileError(f"profile: fleet.replay: file {spec.file} not found{hint}") from None
    except OSError as exc:
        raise ProfileError(f"profile: fleet.replay: cannot read file {spec.file}: {exc.strerror or exc}") from None
    return _bind(spec, str(path), st.st_mtime_ns, st.st_size)


@functools.lru_cache(maxsize=4)
def _bind(spec: ReplaySpec, path: str, mtime_ns: int, size: int) -> tuple[Replay, float | None]:
    # Cached by the file's identity: preflight checks it and the shard specs carry it, from one read.
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"profile: fleet.replay: cannot read file {spec.file}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        curves = parse_csv(text, source=spec.file)
        return spec.bind(curves), spec.sim_start_epoch_s(curves)
    except ValueError as exc:
        raise ProfileError(f"profile: fleet.{exc}" if str(exc).startswith("replay:") else f"profile: {exc}") from None
