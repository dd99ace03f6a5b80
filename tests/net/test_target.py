"""Per-target settings (base path, operations vocabulary, granularity, TLS) and the TLS context built from them."""

from __future__ import annotations

import asyncio
import ssl
from pathlib import Path

import pytest
import uvloop
from aiohttp import web

from harness.core.errors import RESET, TLS
from harness.core.target import TargetSettings, from_table
from harness.dialects import Request
from harness.net.aiotransport import AiohttpTransport
from harness.net.tls import client_context, context_for
from tests.doubles import status_or_class


def test_defaults_and_base_url() -> None:
    """The base path is appended once, never doubled, trailing slashes dropped."""
    s = TargetSettings(base_path="/openadr3/3.0.1/")
    assert s.base_path == "/openadr3/3.0.1"
    assert s.base_url("http://h:8080") == "http://h:8080/openadr3/3.0.1"
    assert s.base_url("http://h:8080/openadr3/3.0.1/") == "http://h:8080/openadr3/3.0.1"
    assert TargetSettings().base_url("https://h/api/") == "https://h/api"
    assert (TargetSettings().operations, TargetSettings().granularity, TargetSettings().verify) == ("crud", None, True)


@pytest.mark.parametrize(
    ("table", "message"),
    [
        ({"base_path": "openadr3"}, "target.base_path must be empty or a path like /openadr3/3.0.1, got 'openadr3'"),
        ({"operations": "rest"}, "target.operations must be one of crud, http, got 'rest'"),
        ({"granularity": "site"}, "target.granularity must be one of ven, resource, load, got 'site'"),
        ({"tls": {"client_key": "k.pem"}}, "target.tls.client_key needs target.tls.client_cert"),
        ({"tls": {"ca_bundle": "ca.pem", "verify": False}}, "target.tls.ca_bundle is set but target.tls.verify is false"),
        ({"tls": {"verify": "no"}}, "target.tls.verify must be true or false, got 'no'"),
        ({"tls": {"ca_bundle": ""}}, "target.tls.ca_bundle must be a file path, got ''"),
        ({"tls": {"cafile": "x"}}, "unknown key 'target.tls.cafile'"),
        ({"tls": "x"}, "target.tls must be a table, got 'x'"),
        ({"source_addresses": "127.0.0.2"}, "target.source_addresses must be a list of IP addresses, got '127.0.0.2'"),
        ({"source_addresses": ["127.0.0.2", "lo"]}, "target.source_addresses: 'lo' is not an IP address"),
        ({"source_addresses": ["127.0.0.2", "127.0.0.2"]}, "target.source_addresses lists an address twice"),
    ],
)
def test_bad_settings_are_one_line_errors_naming_the_key(table: dict[str, object], message: str) -> None:
    """Every invalid setting is a one-line ValueError naming its key."""
    with pytest.raises(ValueError) as e:
        from_table(table)
    assert str(e.value).startswith(message) and "\n" not in str(e.value)


def test_from_table_reads_a_profile_target_table() -> None:
    """A profile's [target] table (with keys that belong to the profile) gives the settings."""
    s = from_table({"url": "https://h", "dialect": "openadr-3.1.0", "base_path": "/openadr3", "operations": "http",
                    "granularity": "load", "tls": {"ca_bundle": "/etc/ca.pem", "client_cert": "/c.pem"}})
    assert s == TargetSettings("/openadr3", "http", "load", "/etc/ca.pem", "/c.pem", None, True)
    s = from_table({"source_addresses": ["127.0.0.2", "::1"]})
    assert s.source_addresses == ("127.0.0.2", "::1") and [s.source_for(i) for i in range(3)] == ["127.0.0.2", "::1", "127.0.0.2"]
    assert TargetSettings().source_for(7) is None


def test_missing_and_bad_files_name_the_option_and_path(tmp_path: Path, cert: tuple[Path, Path]) -> None:
    """A missing or non-PEM file is a one-line ValueError naming the option and the path."""
    junk = tmp_path / "junk.pem"
    junk.write_text("not a certificate\n")
    cases = [
        (TargetSettings(ca_bundle=str(tmp_path / "nope.pem")), f"target.tls.ca_bundle file not found: {tmp_path / 'nope.pem'}"),
        (TargetSettings(ca_bundle=str(junk)), f"target.tls.ca_bundle {junk} is not a PEM CA bundle"),
        (TargetSettings(client_cert=str(junk)), f"target.tls.client_cert {junk}: certificate and key do not load"),
        (TargetSettings(client_cert=str(cert[0]), client_key=str(tmp_path / "k")), f"target.tls.client_key file not found: {tmp_path / 'k'}"),
    ]
    for settings, message in cases:
        with pytest.raises(ValueError) as e:
            client_context(settings)
        assert str(e.value).startswith(message) and "\n" not in str(e.value)
    with pytest.raises(ValueError, match="target.tls is set but the target http://h is plain http"):
        context_for("http://h", TargetSettings(ca_bundle=str(cert[0])))
    assert context_for("http://h", TargetSettings()) is None


def test_context_settings() -> None:
    """TLS >= 1.2; verification on by default, off (no hostname check) when asked."""
    on, off = client_context(TargetSettings()), client_context(TargetSettings(verify=False))
    assert on.minimum_version == ssl.TLSVersion.TLSv1_2 and on.verify_mode == ssl.CERT_REQUIRED and on.check_hostname
    assert off.verify_mode == ssl.CERT_NONE and not off.check_hostname


def test_handshakes_through_the_real_transport(cert: tuple[Path, Path]) -> None:
    """Against a self-signed mutual-TLS server: the CA bundle (+ client cert) connects, verify off connects,
    the system CAs fail as a `tls` failure, no client cert is refused."""
    crt, key = map(str, cert)
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_ctx.load_cert_chain(crt, key)
    server_ctx.load_verify_locations(cafile=crt)
    server_ctx.verify_mode = ssl.CERT_REQUIRED

    async def hello(request: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def attempt(url: str, settings: TargetSettings) -> int | str:
        t = AiohttpTransport(url, limit=1, timeout_s=5.0, ssl_context=context_for(url, settings))
        return await status_or_class(t, Request("GET", "/hello"))

    async def main() -> list[int | str]:
        app = web.Application()
        app.router.add_get("/hello", hello)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=server_ctx)
        await site.start()
        url = f"https://127.0.0.1:{runner.addresses[0][1]}"
        try:
            return [
                await attempt(url, TargetSettings(ca_bundle=crt, client_cert=crt, client_key=key)),
                await attempt(url, TargetSettings(verify=False, client_cert=crt, client_key=key)),
                await attempt(url, TargetSettings(client_cert=crt, client_key=key)),
                await attempt(url, TargetSettings(ca_bundle=crt)),
            ]
        finally:
            await runner.cleanup()

    with asyncio.Runner(loop_factory=uvloop.new_event_loop) as r:
        got = r.run(asyncio.wait_for(main(), 20))
    # TLS 1.3 reports a refused client certificate after the handshake: the client sees a reset
    assert got[:3] == [200, 200, TLS] and got[3] in (TLS, RESET), got
