"""The command line: help for every command, one-line errors with exit code 2 for a user's mistakes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest


def harness(*args: str, cwd: Path | None = None, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=timeout, cwd=cwd
    )


@pytest.mark.parametrize("command", [[], ["run"], ["vtn"], ["profiles"]])
def test_help_explains_every_option(command: list[str]) -> None:
    """`harness [COMMAND] --help` exits 0 and documents the options."""
    r = harness(*command, "--help")
    assert r.returncode == 0, r.stderr
    assert "Usage:" in r.stdout
    if command == ["run"]:
        for opt in ("--vens", "--interval", "--duration", "--target", "--workers", "--seed", "--out", "--reports-per-ven"):
            assert opt in r.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["run", "--vens", "0"], "profile: fleet.vens must be > 0, got 0"),
        (["run", "--vens", "many"], "'many' is not a valid integer"),
        (["run", "--interval", "15 parsecs"], "--interval must be a duration"),
        (["run", "--profile", "no-such-profile"], "--profile: no profile file 'no-such-profile'"),
        (["run", "--target", "ftp://example"], "profile: target must be an http(s) URL"),
        (["run", "--connection", "carrier-pigeon"], "'carrier-pigeon' is not one of"),
        (["run", "--bogus"], "No such option"),
        (["vtn", "--fault", "nonsense"], "--fault must be KEY=VALUE"),
        (["vtn", "--broker", "http://127.0.0.1:1883"], "--broker: broker must be mqtt://HOST:PORT, got 'http://127.0.0.1:1883'"),
        (["vtn", "--no-mqtt", "--broker", "mqtt://127.0.0.1:1883"], "--broker and --no-mqtt exclude each other"),
        (["run", "--source-address", "127.0.0.2", "--source-address", "nowhere"],
         "profile: target.source_addresses: 'nowhere' is not an IP address"),
        (["run", "--target", "http://127.0.0.1:9", "--vens", "70000", "--workers", "5", "--source-address", "127.0.0.2"],
         "70,000 VENs with one connection each need 70,000 ephemeral ports per source address with one source address"),
    ],
)
def test_user_mistakes_are_one_line_and_exit_2(args: list[str], message: str, tmp_path: Path) -> None:
    """A bad flag or value prints one line on stderr naming it, exits 2, and shows no traceback."""
    r = harness(*args, cwd=tmp_path)
    assert r.returncode == 2, (r.returncode, r.stderr)
    assert message in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "Traceback" not in r.stderr


def test_bad_profile_file_names_the_key(tmp_path: Path) -> None:
    """A profile file with a bad value fails with the key and value, exit 2."""
    f = tmp_path / "p.toml"
    f.write_text("[fleet]\nvens = -5\n")
    r = harness("run", "--profile", str(f), cwd=tmp_path)
    assert r.returncode == 2 and "profile: fleet.vens must be > 0, got -5" in r.stderr


def test_profiles_lists_shipped_profiles() -> None:
    """`harness profiles` lists each shipped profile with its description."""
    r = harness("profiles")
    assert r.returncode == 0
    assert any(line.startswith("smoke ") and "CI-sized" in line for line in r.stdout.splitlines())
