"""What a user sees when --target is not a VTN harness can talk to: a plain web server, a certificate it does not
trust. One line naming what is wrong and what to do, exit 4, at once (no retry window spent on either)."""

from __future__ import annotations

import http.server
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any


class CountingServer(http.server.ThreadingHTTPServer):
    """`python -m http.server` on 127.0.0.1 port 0 (POST answers 501 text/html), counting the connections it
    accepted; with a TLS context, the handshake is done on accept (so a refused one is still counted)."""

    connections = 0

    def get_request(self) -> tuple[socket.socket, Any]:
        self.connections += 1
        return super().get_request()


@contextmanager
def web_server(tls: ssl.SSLContext | None = None) -> Iterator[tuple[str, CountingServer]]:
    server = CountingServer(("127.0.0.1", 0), http.server.SimpleHTTPRequestHandler)
    if tls is not None:
        server.socket = tls.wrap_socket(server.socket, server_side=True)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"{'https' if tls else 'http'}://127.0.0.1:{server.server_address[1]}/openadr3/3.0.1", server
    finally:
        server.shutdown()
        server.server_close()


def run(target: str, out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "harness", "run", "--target", target, "--vens", "3", "--duration", "10s",
                           "--out", str(out), *extra], capture_output=True, text=True, timeout=60)


def test_a_plain_web_server_is_named_not_an_openadr_vtn(tmp_path: Path) -> None:
    """Its token endpoint answers with an HTML page: 'not an OpenADR VTN at URL: HTTP 501 text/html', never a
    bytes dump of the page; exit 4 after that one request."""
    with web_server() as (url, server):
        r = run(url, tmp_path)
    assert r.returncode == 4, r.stderr
    assert r.stderr.splitlines() == [
        f"harness: error: not an OpenADR VTN at {url}: HTTP 501 text/html from its token endpoint; "
        "--target must be the VTN's base URL, e.g. http://HOST:PORT/openadr3/3.0.1"]
    assert server.connections == 1


def test_an_untrusted_certificate_names_ca_bundle_and_insecure(cert: tuple[Path, Path], tmp_path: Path) -> None:
    """A self-signed VTN: the TLS failure is said after one handshake (not retried through the reachability window
    and called 'unreachable'), naming --ca-bundle and --insecure; with either, the run gets past TLS to the next
    true fact (this server is not a VTN)."""
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(*map(str, cert))
    with web_server(ctx) as (url, server):
        r = run(url, tmp_path / "a")
        handshakes = server.connections
        trusted = run(url, tmp_path / "b", "--ca-bundle", str(cert[0]))
        insecure = run(url, tmp_path / "c", "--insecure")
    assert r.returncode == 4, r.stderr
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"harness: error: target {url}: TLS failed (") and "CERTIFICATE_VERIFY_FAILED" in line
    assert line.endswith("trust the VTN's CA with --ca-bundle FILE (target.tls.ca_bundle), or for a test VTN only "
                         "skip the check with --insecure")
    assert handshakes == 1
    for other in (trusted, insecure):
        assert other.returncode == 4 and other.stderr.startswith("harness: error: not an OpenADR VTN at"), other.stderr
