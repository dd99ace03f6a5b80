"""The supervisor's checks before a run starts: dialect, granularity, TLS files and secrets, each one line, exit 2."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from harness.core.profile import Profile, ProfileError
from harness.core.target import TargetSettings
from harness.run.session import RunSession

REMOTE = "http://127.0.0.1:9"  # never reached: every check here fails first


def _harness(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", *args], capture_output=True, text=True, timeout=60, cwd=cwd)


@pytest.mark.parametrize(
    ("profile", "message"),
    [
        (Profile(dialect="snake-case-example", vens=2),
         "profile: target.dialect snake-case-example needs --target: the embedded VTN speaks only openadr-3.0.1 and "
         "openadr-3.1.0"),
        (Profile(dialect="no-such", vens=2),
         "profile: target.dialect must be one of openadr-3.0.1, openadr-3.1.0, snake-case-example, got 'no-such'"),
        (Profile(target=REMOTE, dialect="snake-case-example", vens=2, target_settings=TargetSettings(granularity="ven")),
         "profile: target.granularity 'ven' is not supported by dialect snake-case-example (supports: load)"),
        (Profile(target="https://127.0.0.1:9", vens=2, target_settings=TargetSettings(ca_bundle="/nope")),
         "profile: target.tls.ca_bundle file not found: /nope"),
        (Profile(vens=2, target_settings=TargetSettings(verify=False, client_cert="/nope.pem")),
         "profile: target.tls.client_cert file not found: /nope.pem"),
    ],
)
def test_bad_target_settings_fail_before_anything_starts(tmp_path: Path, profile: Profile, message: str) -> None:
    """Each mistake is a one-line ProfileError, raised before a results folder or an embedded VTN exists."""
    with pytest.raises(ProfileError) as e:
        RunSession(profile, tmp_path).run()
    assert str(e.value) == message
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("env", ["HARNESS_BL_SECRET", "HARNESS_VEN_SECRET"])
def test_a_target_without_its_secret_in_the_environment_fails(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, env: str) -> None:
    """With --target, an unset secret variable is an error naming it: the embedded defaults are not sent elsewhere."""
    monkeypatch.delenv(env)
    key = "bl_secret_env" if env == "HARNESS_BL_SECRET" else "ven_secret_env"
    with pytest.raises(ProfileError) as e:
        RunSession(Profile(target=REMOTE, vens=2), tmp_path).run()
    assert str(e.value) == (f"profile: target.{key}: environment variable {env} is not set "
                            "(a --target needs its real secret; defaults apply only to the embedded VTN)")


def test_the_embedded_vtn_runs_without_secrets_in_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No --target and no secret variables: the embedded VTN's defaults apply and the run passes."""
    monkeypatch.delenv("HARNESS_BL_SECRET")
    monkeypatch.delenv("HARNESS_VEN_SECRET")
    p = Profile(name="defaults", vens=3, interval_s=0.3, reports_per_ven=1, workers=1, max_loop_lag_ms=5000)
    outcome = RunSession(p, tmp_path).run()
    assert (outcome.exit_code, outcome.summary["operations"]["report"]["ok"]) == (0, 3)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--ca-bundle", "/nope"], "harness: error: profile: target.tls.ca_bundle file not found: /nope"),
        (["--target", "https://127.0.0.1:9", "--insecure", "--ca-bundle", "/nope"],
         "harness: error: profile: target.tls.ca_bundle is set but target.tls.verify is false: choose one"),
        (["--dialect", "snake-case-example"],
         "harness: error: profile: target.dialect snake-case-example needs --target: the embedded VTN speaks only "
         "openadr-3.0.1 and openadr-3.1.0"),
        (["--target", REMOTE, "--dialect", "snake-case-example", "--granularity", "resource"],
         "harness: error: profile: target.granularity 'resource' is not supported by dialect snake-case-example "
         "(supports: load)"),
        (["--granularity", "site"], "Invalid value for '--granularity'"),
    ],
)
def test_run_flags_for_targets_fail_in_one_line(tmp_path: Path, args: list[str], message: str) -> None:
    """`harness run` with a bad --ca-bundle, --insecure, --dialect or --granularity: one line, exit 2."""
    r = _harness("run", "--vens", "2", *args, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert message in r.stderr and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_run_without_the_secret_for_a_target_exits_2(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """`harness run --target URL` with HARNESS_VEN_SECRET unset: one line naming the variable, exit 2."""
    monkeypatch.delenv("HARNESS_VEN_SECRET")
    r = _harness("run", "--vens", "2", "--target", REMOTE, cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == ("harness: error: profile: target.ven_secret_env: environment variable HARNESS_VEN_SECRET "
                                "is not set (a --target needs its real secret; defaults apply only to the embedded VTN)")
