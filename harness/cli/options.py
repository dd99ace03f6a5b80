"""What every `harness` command shares: the duration flag type, the shipped profiles, loading a profile.

Edge (files). A mistake here is a ProfileError or UsageError; the command group turns it into one line and a code.
"""

from __future__ import annotations

import importlib.resources
import os
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from harness.core.exits import ProfileError
from harness.core.profile import Profile, from_toml
from harness.core.units import parse_duration

if TYPE_CHECKING:
    from rich.console import Console


class Duration(click.ParamType):  # type: ignore[type-arg]
    name = "duration"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> float:
        if isinstance(value, float):
            return value
        try:
            return parse_duration(value, f"--{param.name.replace('_', '-')}" if param and param.name else "duration")
        except ValueError as exc:
            self.fail(str(exc), param, ctx)


DURATION = Duration()


def shipped_profiles() -> dict[str, Path]:
    """Profiles shipped in the package (installed: harness/profiles; a checkout: the top-level profiles/)."""
    try:
        root = Path(str(importlib.resources.files("harness.profiles")))
    except ModuleNotFoundError:
        root = Path(__file__).resolve().parents[2] / "profiles"
    return {p.stem: p for p in sorted(root.glob("*.toml"))}


def load_profile(name_or_path: str | None) -> Profile:
    if name_or_path is None:
        return Profile()
    path = Path(name_or_path)
    if not path.is_file():
        shipped = shipped_profiles()
        if name_or_path not in shipped:
            raise ProfileError(f"--profile: no profile file {name_or_path!r} and no shipped profile of that name "
                               f"(shipped: {', '.join(shipped)})")
        path = shipped[name_or_path]
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"--profile: cannot read {path}: {exc.strerror}") from None
    return anchored(from_toml(text, source=str(path)), path.resolve().parent)


def anchored(p: Profile, folder: Path) -> Profile:
    """The profile with every relative file it names (target.ven_credentials, fleet.replay, target.tls files)
    resolved against the profile file's folder, not the working directory: a profile and its files move together."""
    def at(v: str | None) -> str | None:
        if v is None:
            return None
        v = os.path.expanduser(v)
        return v if os.path.isabs(v) else str(folder / v)

    ts = p.target_settings
    tls = replace(ts, ca_bundle=at(ts.ca_bundle), client_cert=at(ts.client_cert), client_key=at(ts.client_key))
    return replace(p, ven_credentials=at(p.ven_credentials), target_settings=tls,
                   replay=None if p.replay is None else replace(p.replay, file=str(at(p.replay.file))))


PIPED_WIDTH = 200  # CI logs and pipes: wide enough that no table cell is cut ("create_reso…")


def out_console() -> Console:
    """stdout as rich sees it: the terminal's width on a terminal, PIPED_WIDTH columns when piped or captured."""
    from rich.console import Console

    console = Console(stderr=False)
    return console if console.is_terminal else Console(stderr=False, width=PIPED_WIDTH)
