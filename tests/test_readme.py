"""The README and docs/ say what runs: short README with the two commands first, every link resolves, every
`harness ...` command shown names a real subcommand and real options, and the README's first run works."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "README.md"
PAGES = [README, *sorted((ROOT / "docs").glob("*.md"))]
LINK = re.compile(r"!?\[[^\]]*\]\(([^)\s]+)\)")
FENCE = re.compile(r"^```[^\n]*\n(.*?)^```", re.M | re.S)


def _anchors(page: Path) -> set[str]:
    """GitHub's heading anchors: lower case, punctuation dropped, spaces to hyphens."""
    out = set()
    for line in page.read_text(encoding="utf-8").splitlines():
        if line.startswith("#"):
            title = line.lstrip("#").strip().lower()
            out.add(re.sub(r"\s", "-", re.sub(r"[^\w\s-]", "", title)))
    return out


def test_readme_is_short_and_opens_with_the_two_commands() -> None:
    text = README.read_text(encoding="utf-8")
    assert len(text.splitlines()) < 260
    sections = re.findall(r"^## (.+)$", text, re.M)
    assert sections[0] == "Two commands"
    first = FENCE.findall(text.split("## Two commands", 1)[1])[:2]
    assert "pip install . && harness run --vens 1000" in first[0]
    assert "tox -e py" in first[1]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "tox -e py" in ci  # .ci/run calls the README's test command


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_relative_link_resolves(page: Path) -> None:
    broken = []
    for target in LINK.findall(page.read_text(encoding="utf-8")):
        if re.match(r"^[a-z]+:", target):
            continue  # https:, mailto:
        path, _, anchor = target.partition("#")
        dest = (page.parent / path).resolve() if path else page
        if not dest.exists():
            broken.append(target)
        elif anchor and dest.suffix == ".md" and anchor not in _anchors(dest):
            broken.append(target)
    assert broken == []


@cache
def _help(sub: str) -> str:
    r = subprocess.run([sys.executable, "-m", "harness", sub, "--help"], capture_output=True, text=True, timeout=60,
                       cwd=ROOT)
    assert r.returncode == 0, f"harness {sub} --help: {r.stderr.strip()}"
    return r.stdout


def _commands(page: Path) -> list[str]:
    """Every `harness SUB ...` line of the page's shell and synopsis blocks (continuation lines joined)."""
    out = []
    for block in FENCE.findall(page.read_text(encoding="utf-8")):
        lines = block.splitlines()
        for i, line in enumerate(lines):
            m = re.search(r"(?:^|&&\s*|\|\|\s*|^\$\s*)harness\s+([a-z]+)(.*)$", line.strip())
            if not m:
                continue
            rest = m.group(2)
            j = i + 1
            while j < len(lines) and lines[j].startswith(" ") and not lines[j].strip().startswith("harness"):
                rest += " " + lines[j]
                j += 1
            out.append(f"{m.group(1)} {rest}")
    return out


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_harness_command_shown_names_real_options(page: Path) -> None:
    wrong = []
    for cmd in _commands(page):
        sub, _, rest = cmd.partition(" ")
        if sub in ("run", "vtn", "report", "audit", "capacity", "compare", "profiles"):
            text = _help(sub)
            for opt in re.findall(r"(?<![\w-])--[a-z][a-z0-9-]*", rest.split("#", 1)[0]):
                if opt not in text:
                    wrong.append(f"harness {sub} {opt}")
        else:
            wrong.append(f"harness {sub}: no such command")
    assert wrong == []


def test_readme_commands_are_checked_at_all() -> None:
    """The option check above is not vacuous: the README shows run, vtn, compare and audit commands."""
    subs = {c.split(" ", 1)[0] for c in _commands(README)}
    assert {"run", "vtn", "compare", "audit", "capacity"} <= subs


def test_the_readmes_first_run_passes_in_small(tmp_path: Path) -> None:
    """The README's first command (`harness run --vens 1000 --duration 60s`) in small: the same command line with
    20 VENs for 3 s, from an empty folder — exit 0, a summary that passes by the default gates, report.html."""
    r = subprocess.run([sys.executable, "-m", "harness", "run", "--vens", "20", "--duration", "3s", "--interval", "1s",
                        "--quiet"], capture_output=True, text=True, timeout=120, cwd=tmp_path)
    assert r.returncode == 0, r.stderr
    (run_dir,) = (tmp_path / "runs").iterdir()
    doc = json.loads((run_dir / "summary.json").read_text())
    assert doc["verdict"] == "pass" and doc["thresholds_source"] == "default"
    assert doc["operations"]["report"]["ok"] >= 20
    assert (run_dir / "report.html").exists()


def test_the_readmes_separate_vtn_example_runs_as_written(tmp_path: Path) -> None:
    """`harness vtn ... &`, the README's `export` line, `harness run --target ...`: with port 0 instead of 8080
    and 10 VENs for 3 s, the example exits 0 — the secrets it exports are the ones the VTN expects."""
    import os

    text = README.read_text(encoding="utf-8")
    (export,) = re.findall(r"^export (HARNESS_BL_SECRET=\S+ HARNESS_VEN_SECRET=\S+)", text, re.M)
    env = {k: v for k, v in os.environ.items() if not k.startswith("HARNESS_")}
    env.update(pair.split("=", 1) for pair in export.split())
    vtn = subprocess.Popen([sys.executable, "-m", "harness", "vtn", "--port", "0", "--db", str(tmp_path / "vtn.sqlite"),
                            "--no-mqtt"], stderr=subprocess.PIPE, text=True, cwd=tmp_path, env=env)
    try:
        assert vtn.stderr is not None
        line = vtn.stderr.readline()  # the first line names the URL (blocks until the VTN listens or exits)
        m = re.search(r"OpenADR 3\.0\.1 at (http://127\.0\.0\.1:\d+/openadr3/3\.0\.1)", line)
        assert m, line
        r = subprocess.run([sys.executable, "-m", "harness", "run", "--target", m.group(1), "--vens", "10",
                            "--duration", "3s", "--interval", "1s", "--quiet"], capture_output=True, text=True,
                           timeout=120, cwd=tmp_path, env=env)
        assert r.returncode == 0, r.stderr
    finally:
        vtn.terminate()
        vtn.communicate(timeout=20)  # reads and closes its stderr


def _profile_names(text: str) -> set[str]:
    """Profiles a page names: `--profile NAME`, `--profile profiles/NAME.toml`, `profiles/NAME.toml`."""
    names = set()
    for token in re.findall(r"--profile\s+([^\s`'\"|)]+)", text):
        token = token.rstrip(".,;:")
        if token.endswith(".toml"):
            token = token.removeprefix("profiles/").removesuffix(".toml")
        if re.fullmatch(r"[a-z0-9][a-z0-9_-]*", token):  # not NAME|FILE, a placeholder
            names.add(token)
    return names | set(re.findall(r"(?<![\w/])profiles/([a-z0-9_-]+)\.toml", text))


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.relative_to(ROOT).as_posix())
def test_every_profile_named_exists(page: Path) -> None:
    missing = sorted(n for n in _profile_names(page.read_text(encoding="utf-8"))
                     if not (ROOT / "profiles" / f"{n}.toml").exists())
    assert missing == []


def test_the_profiles_page_lists_every_shipped_profile() -> None:
    assert "smoke" in _profile_names(README.read_text(encoding="utf-8"))  # the check above is not vacuous
    page = (ROOT / "docs" / "profiles.md").read_text(encoding="utf-8")
    rows = {n for line in page.splitlines() if line.startswith("| `") for n in
            re.findall(r"`([a-z0-9-]+)`", line.split("|")[1])}
    shipped = {p.stem for p in (ROOT / "profiles").glob("*.toml")}
    assert rows == shipped
