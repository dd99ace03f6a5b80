"""Client credentials and the token table (pure: fake clock, no server)."""

from __future__ import annotations

import pytest

from harness.vtn import VtnConfig
from harness.vtn.auth import BL_SCOPES, VEN_SCOPES, VEN_SCOPES_31, OAuthError, Principal, TokenStore, client_principal, grant_scopes


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_who_gets_a_principal() -> None:
    """The BL id with its secret, and any ven-<name> with the shared VEN secret; nothing else."""
    config = VtnConfig(bl_client_id="ops", bl_client_secret="b", ven_client_secret="v")
    assert client_principal(config, "ops", "b") == Principal("ops", BL_SCOPES, is_ven=False)
    assert client_principal(config, "ven-home_1.a", "v") == Principal("ven-home_1.a", VEN_SCOPES, is_ven=True)
    for cid, secret in (("ops", "v"), ("ven-a", "b"), ("ven-", "v"), ("ven-a b", "v"), ("ven-" + "x" * 121, "v"),
                        ("bl", "b"), ("", "")):
        assert client_principal(config, cid, secret) is None, cid


def test_scopes_requested_narrow_the_grant() -> None:
    """No scope asked → all allowed; asked → the allowed subset; nothing allowed asked → invalid_scope."""
    assert grant_scopes(VEN_SCOPES, None) == VEN_SCOPES
    assert grant_scopes(VEN_SCOPES, "  ") == VEN_SCOPES
    assert grant_scopes(VEN_SCOPES, "read_all,write_reports junk") == {"read_all", "write_reports"}
    with pytest.raises(OAuthError) as err:
        grant_scopes(VEN_SCOPES, "write_programs")
    assert (err.value.status, err.value.error) == (400, "invalid_scope")


def test_tokens_expire_and_are_swept() -> None:
    """A token is live until its ttl passes; expired tokens are dropped by later issues' sweeps."""
    clock = Clock()
    store = TokenStore(ttl_s=10, clock=clock)
    who = Principal("ven-a", VEN_SCOPES, is_ven=True)
    first = store.issue(who)
    assert store.lookup(first.value) == (who, "")
    assert store.lookup("nope") == (None, "unknown")
    clock.now = 9.99
    second = store.issue(who)
    assert first.value != second.value and len(store) == 2
    clock.now = 10.0
    assert store.lookup(first.value) == (None, "expired")
    assert store.lookup(first.value) == (None, "unknown")
    clock.now = 25.0
    store.issue(who)
    assert len(store) == 1  # the sweep dropped `second`
    assert "value" not in repr(first) and first.value not in repr(first)


def test_a_shared_ven_client_is_the_only_ven_login() -> None:
    """--shared-ven-client: only that id with the VEN secret gets VEN tokens; ven-<name> ids no longer do."""
    config = VtnConfig(ven_client_id="ven_client", ven_client_secret="999")
    assert client_principal(config, "ven_client", "999") == Principal("ven_client", VEN_SCOPES, is_ven=True)
    for cid, secret in (("ven_client", "998"), ("ven-a", "999"), ("bl", "999")):
        assert client_principal(config, cid, secret) is None, cid


def test_a_credentials_file_registers_each_ven_and_its_tokens() -> None:
    """--ven-credentials: each listed client id with its own secret; token rows are live tokens that never expire."""
    from harness.core.credentials import VenLogin
    from harness.vtn.auth import preissued

    logins = (VenLogin("a", "id-a", "sa"), VenLogin("b", "id-b", "sb"), VenLogin("c", token="tok-c"))
    config = VtnConfig(ven_logins=logins)
    assert client_principal(config, "id-a", "sa") == Principal("id-a", VEN_SCOPES, is_ven=True)
    for cid, secret in (("id-a", "sb"), ("id-b", "sa"), ("ven-a", "ven-secret"), ("c", "")):
        assert client_principal(config, cid, secret) is None, cid
    clock = Clock()
    store = TokenStore(ttl_s=10, clock=clock, preissued=preissued(config))
    clock.now = 1e9
    # a pre-issued token passes no token endpoint: it carries the 3.1.0 VEN scopes, which include 3.0.1's
    assert store.lookup("tok-c") == (Principal("c", VEN_SCOPES_31, is_ven=True), "")
    assert store.lookup("tok-d") == (None, "unknown")
    assert "sa" not in repr(config) and "tok-c" not in repr(config) and "tok-c" not in repr(logins)


def test_credential_modes_that_conflict_are_refused() -> None:
    """A shared client and a file at once, or the BL id as a VEN id, is a one-line ValueError."""
    from harness.core.credentials import VenLogin

    with pytest.raises(ValueError, match="exclude each other"):
        VtnConfig(ven_client_id="v", ven_logins=(VenLogin("a", "id-a", "s"),))
    with pytest.raises(ValueError, match="not the BL client"):
        VtnConfig(ven_client_id="bl")
    with pytest.raises(ValueError, match="BL client"):
        VtnConfig(ven_logins=(VenLogin("a", "bl", "s"),))
