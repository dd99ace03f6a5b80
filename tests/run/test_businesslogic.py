"""The operator's blocking calls: 3.1.0 token endpoint discovery and programs read through the dialect."""

from __future__ import annotations

import json
import urllib.request

from harness.dialects import get
from harness.run.operator import Operator
from tests import odd_server
from tests.snake_server import SnakeServer


def test_operator_discovers_the_token_url_and_finds_the_program() -> None:
    """3.1.0: GET /auth/server names an absolute tokenURL outside the base path; the BL token comes from there and
    the program is found by name through parse_programs."""
    with SnakeServer(odd_server.make_discovery_app) as s:
        op = Operator(s.url + "/openadr3", get("openadr-3.1.0"), "bl", "bl-secret")
        op.discover_token_url()
        assert op.token_url == s.url + "/idp/oauth2/token"
        assert op.ensure_program(odd_server.PROGRAM) == "p-1"
        with urllib.request.urlopen(s.url + "/_test/stats", timeout=5) as resp:
            assert json.loads(resp.read()) == {"token_clients": ["bl"]}


def test_operator_without_discovery_keeps_the_base_token_path() -> None:
    """3.0.1 has no /auth/server: no call is made and the token URL stays {base}/auth/token."""
    op = Operator("http://127.0.0.1:9", get("openadr-3.0.1"), "bl", "bl-secret")
    op.discover_token_url()
    assert op.token_url is None
