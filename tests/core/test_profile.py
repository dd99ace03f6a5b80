"""Profiles: TOML into a validated frozen dataclass; errors name the key and the value."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from harness.core.profile import Profile, ProfileError, from_toml, override

PROFILES = Path(__file__).resolve().parents[2] / "profiles"


def test_full_profile_parses() -> None:
    """Every section maps onto the Profile fields, with durations in seconds."""
    p = from_toml(
        """
name = "t"
description = "d"
thresholds = ["report.response_time.p99 < 500ms"]
[target]
url = "http://127.0.0.1:8080/openadr3/3.0.1"
[fleet]
vens = 20
sites_per_ven = 3
mix = { household = 3, restaurant = 1 }
[behaviour]
interval = "500ms"
connection = "pooled"
timeout = "2s"
[run]
duration = "2m"
reports_per_ven = 3
seed = 9
"""
    )
    assert (p.vens, p.sites_per_ven, p.interval_s, p.duration_s, p.reports_per_ven, p.seed) == (20, 3, 0.5, 120.0, 3, 9)
    assert p.mix == (("household", 3.0), ("restaurant", 1.0))
    assert p.connection == "pooled" and p.timeout_s == 2.0
    assert p.target == "http://127.0.0.1:8080/openadr3/3.0.1"
    assert p.target_rate_per_s == 40.0
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.vens = 3  # type: ignore[misc]


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fleet]\nvens = 0", "profile: fleet.vens must be > 0, got 0"),
        ("[fleet]\nvens = 'many'", "profile: fleet.vens must be an integer, got 'many'"),
        ("[behaviour]\ninterval = '15 parsecs'", "profile: behaviour.interval must be a duration"),
        ("[behaviour]\nconnection = 'carrier-pigeon'", "profile: behaviour.connection must be one of per-ven, pooled"),
        ("[fleet]\nmix = { castle = 1 }", "profile: fleet.mix key must be one of"),
        ("[fleet]\nvenz = 3", "profile: unknown key 'fleet.venz'"),
        ("[target]\nurl = 'ftp://x'", "profile: target must be an http(s) URL"),
        ("vens = = 3", "not valid TOML"),
    ],
)
def test_errors_name_key_and_value(text: str, message: str) -> None:
    """Each mistake is a one-line ProfileError naming the key (and the value)."""
    with pytest.raises(ProfileError) as e:
        from_toml(text)
    assert message in str(e.value)
    assert "\n" not in str(e.value)


def test_cli_overrides_skip_none() -> None:
    """Flags not given (None) leave the profile's value; given ones replace and are re-validated."""
    p = override(Profile(vens=10), vens=None, interval_s=2.0)
    assert (p.vens, p.interval_s) == (10, 2.0)
    with pytest.raises(ProfileError, match="fleet.vens must be > 0"):
        override(p, vens=0)


@pytest.mark.parametrize("path", sorted(PROFILES.glob("*.toml")), ids=lambda p: p.stem)
def test_shipped_profiles_are_valid(path: Path) -> None:
    """Every shipped profile parses, is named after its file and describes itself."""
    p = from_toml(path.read_text(encoding="utf-8"), str(path))
    assert p.name == path.stem and p.description


def test_target_table_gives_the_target_settings() -> None:
    """[target] base_path/operations/granularity and [target.tls] become the profile's TargetSettings, parsed once."""
    from harness.core.target import TargetSettings

    p = from_toml('[target]\nurl = "https://h"\ndialect = "openadr-3.1.0"\nbase_path = "/openadr3"\n'
                  'operations = "http"\ngranularity = "resource"\n[target.tls]\nverify = false\n')
    assert (p.target, p.dialect) == ("https://h", "openadr-3.1.0")
    assert p.target_settings == TargetSettings(base_path="/openadr3", operations="http", granularity="resource", verify=False)
    assert Profile().target_settings == TargetSettings()


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[target]\ngranularity = 'site'", "profile: target.granularity must be one of ven, resource, load, got 'site'"),
        ("[target]\noperations = ['crud']", "profile: target.operations must be one of crud, http, got ['crud']"),
        ("[target]\ntls = 'x'", "profile: target.tls must be a table, got 'x'"),
        ("[target.tls]\ncafile = 'x'", "profile: unknown key 'target.tls.cafile' (target.tls keys: target.tls.ca_bundle, target.tls.client_cert, target.tls.client_key, target.tls.verify)"),
    ],
)
def test_target_settings_errors_are_profile_errors(text: str, message: str) -> None:
    """A bad [target] setting is a one-line ProfileError naming target.<key>."""
    with pytest.raises(ProfileError) as e:
        from_toml(text)
    assert str(e.value) == message


def test_target_flags_override_the_settings() -> None:
    """--granularity/--ca-bundle/--insecure replace the profile's target settings; a conflict is a ProfileError."""
    from harness.core.profile import with_target_settings

    p = with_target_settings(Profile(), granularity="load", ca_bundle=None, verify=None)
    assert (p.target_settings.granularity, p.target_settings.verify) == ("load", True)
    with pytest.raises(ProfileError) as e:
        with_target_settings(p, ca_bundle="/ca.pem", verify=False)
    assert str(e.value) == "profile: target.tls.ca_bundle is set but target.tls.verify is false: choose one"


def test_credential_keys_in_the_target_table() -> None:
    """[target] names how VENs log in: a shared client (and shared token), a file, a token variable, a token URL."""
    p = from_toml('[target]\nven_client_id = "ven_client"\nshared_token = true\ntoken_url = "discover"\n')
    assert (p.ven_client_id, p.shared_token, p.token_url) == ("ven_client", True, "discover")
    assert from_toml('[target]\nven_credentials = "vens.csv"\n').ven_credentials == "vens.csv"
    assert from_toml('[target]\nven_token_env = "VTN_TOKEN"\n').ven_token_env == "VTN_TOKEN"
    assert from_toml('[target]\ntoken_url = "https://idp.example/oauth/token"\n').token_url == "https://idp.example/oauth/token"


@pytest.mark.parametrize(("text", "message"), [
    ('ven_client_id = "a"\nven_credentials = "v.csv"', "target.ven_client_id and target.ven_credentials exclude each other"),
    ('ven_credentials = "v.csv"\nven_token_env = "T"', "target.ven_credentials and target.ven_token_env exclude each other"),
    ("shared_token = true", "target.shared_token needs target.ven_client_id"),
    ('ven_client_id = ""', "target.ven_client_id must not be empty"),
    ('ven_client_id = "bl"', "target.ven_client_id 'bl' is the business-logic client"),
    ('token_url = "idp.example/token"', "target.token_url must be \"discover\", an http(s) URL or a path"),
    ('shared_token = "yes"', "target.shared_token must be true or false"),
])
def test_credential_key_errors_name_the_key(text: str, message: str) -> None:
    """A credential mistake is one line naming the [target] key."""
    with pytest.raises(ProfileError) as e:
        from_toml("[target]\n" + text)
    assert message in str(e.value) and "\n" not in str(e.value)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("[fleet]\nvenz = 3", "profile: unknown key 'fleet.venz' - did you mean 'fleet.vens'? (fleet keys: fleet.mix, "
                              "fleet.name_prefix, fleet.replay, fleet.sites_per_ven, fleet.vens)"),
        ("[run]\nduraton = '1s'", "profile: unknown key 'run.duraton' - did you mean 'run.duration'? (run keys: "
                                  "run.drain, run.duration, run.heartbeat, run.reports_per_ven, run.seed, run.warmup, run.workers)"),
        ("[flete]\nvens = 1", "profile: unknown key 'flete.vens' - did you mean 'fleet.vens'? (known keys: "),
    ],
)
def test_an_unknown_key_gets_did_you_mean_and_a_short_list(text: str, message: str) -> None:
    """A misspelled key is named with its closest match and its own table's keys — one short line, not every key."""
    with pytest.raises(ProfileError) as e:
        from_toml(text)
    assert str(e.value).startswith(message)
    assert "\n" not in str(e.value) and len(str(e.value)) < 300
