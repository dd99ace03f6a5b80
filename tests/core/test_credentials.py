"""VEN credentials: a credentials file's rows, their errors, and which login serves which VEN (pure)."""

from __future__ import annotations

import pickle
from pathlib import Path

import pytest

from harness.core.credentials import FILE, SHARED, TOKEN, VenLogin, for_fleet, parse_csv
from harness.core.shard import Credentials, Login


def test_a_credentials_file_with_secrets_tokens_or_both() -> None:
    """Header names are matched loosely; a row has a client id and secret, or a token; blank lines are skipped."""
    rows = parse_csv("\ufeffVEN name, Client_ID ,client_secret,token\nv1,id1,s1,\n\nv2,,,t2\n", "vens.csv")
    assert rows == (VenLogin("v1", "id1", "s1"), VenLogin("v2", token="t2"))
    assert parse_csv("venName,token\nv1,t1\n") == (VenLogin("v1", token="t1"),)
    assert "s1" not in repr(rows) and "t2" not in repr(rows)


@pytest.mark.parametrize(("text", "message"), [
    ("", "file vens.csv is empty"),
    ("name,secret\nv,s\n", "row 1: no venName column"),
    ("venName,clientID\nv,c\n", "row 1: needs clientID and secret columns, or a token column"),
    ("venName,clientID,secret\n", "has a header but no VEN rows"),
    ("venName,clientID,secret\nv,c\n", "row 2: expected 3 columns, got 2"),
    ("venName,clientID,secret\n,c,s\n", "row 2: empty venName"),
    ("venName,clientID,secret,token\nv,c,,\n", "row 2 (VEN v): needs a client id and a secret, or a token"),
    ("venName,clientID,secret\nv,c,s\nv,d,s\n", "row 3: VEN v already listed in row 2"),
    ("venName,clientID,secret\nv,c,s\nw,c,s\n", "row 3: client id c already listed in row 2"),
    ("venName,token\nv,SECRET-T\nw,SECRET-T\n", "row 3: a token already listed in row 2"),
    ("venName,token,access_token\nv,a,b\n", "row 1: two columns for token"),
])
def test_a_bad_credentials_file_is_one_line_naming_the_row(text: str, message: str) -> None:
    """Every mistake names the file and the row, in one line, and never shows a secret or token."""
    with pytest.raises(ValueError) as err:
        parse_csv(text, "vens.csv")
    assert message in str(err.value) and "\n" not in str(err.value) and "SECRET-T" not in str(err.value)


def test_the_fleet_must_have_a_row_for_every_ven() -> None:
    """Rows come back in fleet order; the first VEN without a row is named."""
    rows = parse_csv("venName,clientID,secret\nb,ib,sb\na,ia,sa\n")
    assert [r.client_id for r in for_fleet(rows, ["a", "b"], "vens.csv")] == ["ia", "ib"]
    with pytest.raises(ValueError, match="file vens.csv has no row for VEN c "):
        for_fleet(rows, ["a", "c"], "vens.csv")


def test_each_mode_gives_each_ven_its_login() -> None:
    """per-ven: prefix + name; shared: one id; token: one token; file: the VEN's own row, cut to a shard's VENs."""
    assert Credentials(ven_secret="s").login(3, "v3") == Login("ven-v3", "s")
    assert Credentials(ven_secret="s", ven_mode=SHARED, ven_client_id="ID").login(3, "v3") == Login("ID", "s")
    assert Credentials(ven_mode=TOKEN, ven_token="T").login(3, "v3") == Login(token="T")
    rows = tuple(VenLogin(f"v{i}", f"id{i}", f"s{i}") for i in range(6))
    creds = Credentials(ven_mode=FILE, ven_logins=rows)
    shard = creds.for_vens(2, 5)
    assert len(shard.ven_logins) == 3 and shard.login(4, "v4") == Login("id4", "s4")
    assert pickle.loads(pickle.dumps(shard)) == shard
    assert "s4" not in repr(shard) and "s4" not in repr(shard.login(4, "v4"))
    with pytest.raises(ValueError, match="shared_token needs the shared mode"):
        Credentials(shared_token=True)


def test_run_set_up_resolves_each_mode_from_the_environment(tmp_path: Path) -> None:
    """Secrets from the variables the profile names; a --target needs them set; a file needs no VEN secret."""
    from harness.core.profile import Profile, ProfileError
    from harness.run.credentials import embedded_vtn_auth, resolve_credentials

    env = {"HARNESS_BL_SECRET": "b", "HARNESS_VEN_SECRET": "v", "TOK": "t"}
    target = "http://127.0.0.1:9"
    shared = resolve_credentials(Profile(target=target, ven_client_id="vc", shared_token=True), False, env)
    assert (shared.ven_mode, shared.login(0, "x"), shared.shared_token) == (SHARED, Login("vc", "v"), True)
    assert embedded_vtn_auth(shared) == {"ven_client_id": "vc"}
    token = resolve_credentials(Profile(target=target, ven_token_env="TOK"), False, env)
    assert token.login(5, "x") == Login(token="t")
    with pytest.raises(ProfileError, match="^profile: target.ven_token_env: environment variable TOK is not set"):
        resolve_credentials(Profile(target=target, ven_token_env="TOK"), False, {"HARNESS_BL_SECRET": "b"})
    with pytest.raises(ProfileError, match="^profile: target.ven_secret_env: environment variable HARNESS_VEN_SECRET"):
        resolve_credentials(Profile(target=target, ven_client_id="vc"), False, {"HARNESS_BL_SECRET": "b"})
    (tmp_path / "vens.csv").write_text("venName,token\n" + "".join(f"harness-ven-{i:07d},t{i}\n" for i in range(3)))
    p = Profile(target=target, vens=3, ven_credentials=str(tmp_path / "vens.csv"))
    file = resolve_credentials(p, False, {"HARNESS_BL_SECRET": "b"})  # no VEN secret needed
    assert [file.login(i, f"harness-ven-{i:07d}").token for i in range(3)] == ["t0", "t1", "t2"]
    assert embedded_vtn_auth(file) == {"ven_logins": file.ven_logins}
    with pytest.raises(ProfileError, match=r"^profile: target.ven_credentials: file .*vens.csv has no row for VEN harness-ven-0000003"):
        resolve_credentials(Profile(target=target, vens=4, ven_credentials=str(tmp_path / "vens.csv")), False, env)
    with pytest.raises(ProfileError, match="^profile: target.ven_credentials: file nope.csv not found"):
        resolve_credentials(Profile(target=target, ven_credentials="nope.csv"), False, env)
