"""A run's credentials: secrets from the environment variables the profile names, a credentials file read and
checked against the fleet, and the embedded VTN's settings for the same credential mode.

Edge (reads the environment and one file). Every mistake is a one-line ProfileError naming the [target] key; a
secret or token is never in a message.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from harness.core import embedded
from harness.core.credentials import FILE, PER_VEN, SHARED, TOKEN, VenLogin, for_fleet, parse_csv
from harness.core.fleet import FleetSpec
from harness.core.profile import Profile, ProfileError
from harness.core.shard import Credentials


def ven_mode(p: Profile) -> str:
    if p.ven_client_id is not None:
        return SHARED
    if p.ven_credentials is not None:
        return FILE
    if p.ven_token_env is not None:
        return TOKEN
    return PER_VEN


def _secret(env: Mapping[str, str], key: str, name: str, default: str, embedded_vtn: bool) -> str:
    value = env.get(name)
    if value is None and not embedded_vtn:
        raise ProfileError(f"profile: target.{key}: environment variable {name} is not set "
                           f"(a --target needs its real secret; defaults apply only to the embedded VTN)")
    if value is not None and not value:
        raise ProfileError(f"profile: target.{key}: environment variable {name} is empty")
    return default if value is None else value


def read_logins(path: str, what: str) -> tuple[VenLogin, ...]:
    """A credentials file's rows; `what` names the option in the error (`profile: target.ven_credentials`)."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        hint = "" if os.path.isabs(path) else f" (relative paths start at {os.getcwd()})"
        raise ProfileError(f"{what}: file {path} not found{hint}") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ProfileError(f"{what}: cannot read file {path}: {getattr(exc, 'strerror', None) or exc}") from None
    try:
        return parse_csv(text, path)
    except ValueError as exc:
        raise ProfileError(f"{what}: {exc}") from None


def resolve_credentials(p: Profile, embedded_vtn: bool = True, env: Mapping[str, str] | None = None) -> Credentials:
    """Everything VENs and the operator log in with, in the profile's credential mode. The embedded VTN's defaults
    (`bl-secret`, `ven-secret`, `ven-token`) apply only to it: for another target an unset variable is an error."""
    env = os.environ if env is None else env
    mode = ven_mode(p)
    bl_secret = _secret(env, "bl_secret_env", p.bl_secret_env, embedded.BL_SECRET, embedded_vtn)
    ven_secret = ""
    if mode in (PER_VEN, SHARED):
        ven_secret = _secret(env, "ven_secret_env", p.ven_secret_env, embedded.VEN_SECRET, embedded_vtn)
    prov_secret = ""
    if p.provisioning_client_id is not None:
        # The embedded VTN's BL client may create VENs: its secret is the embedded default.
        prov_secret = env.get(p.provisioning_secret_env, embedded.BL_SECRET if embedded_vtn else "")
        if not prov_secret:
            raise ProfileError(f"profile: target.provisioning_secret_env names {p.provisioning_secret_env}, which is not set")
    extra: dict[str, Any] = {}
    if mode == SHARED:
        extra = {"ven_client_id": p.ven_client_id, "shared_token": p.shared_token}
    elif mode == FILE:
        assert p.ven_credentials is not None
        what = "profile: target.ven_credentials"
        logins = read_logins(p.ven_credentials, what)
        fleet = FleetSpec(vens=p.vens, sites_per_ven=p.sites_per_ven, mix=p.mix, name_prefix=p.name_prefix)
        try:
            extra = {"ven_logins": for_fleet(logins, [fleet.ven_name(i) for i in range(p.vens)], p.ven_credentials)}
        except ValueError as exc:
            raise ProfileError(f"{what}: {exc}") from None
    elif mode == TOKEN:
        assert p.ven_token_env is not None
        extra = {"ven_token": _secret(env, "ven_token_env", p.ven_token_env, embedded.VEN_TOKEN, embedded_vtn)}
    return Credentials(p.bl_client_id, bl_secret, p.ven_client_prefix, ven_secret, p.provisioning_client_id,
                       prov_secret, ven_mode=mode, token_url=p.token_url, **extra)


def embedded_vtn_auth(creds: Credentials) -> dict[str, Any]:
    """VtnConfig settings that make the embedded VTN issue credentials the way the run logs in: one shared VEN
    client, the credentials file's VENs, or the pre-issued token. Its secrets stay its own defaults, so a wrong
    secret in the environment is refused by it as by any VTN."""
    if creds.ven_mode == SHARED:
        return {"ven_client_id": creds.ven_client_id}
    if creds.ven_mode == FILE:
        return {"ven_logins": creds.ven_logins}
    if creds.ven_mode == TOKEN:
        return {"ven_logins": (VenLogin("preissued", embedded.PREISSUED_CLIENT, token=embedded.VEN_TOKEN),)}
    return {}
