"""Bytes on the wire, in one place for every client: the URL, headers and body of a dialect's request, the
bearer token header, Retry-After, and lenient JSON decoding of replies.

Edge (orjson). The lean HTTP/1.1 client, the aiohttp transport and the blocking operator client all take their
headers from `headers()` here, so the three cannot drift apart.
"""

from __future__ import annotations

from typing import Any, NamedTuple
from urllib.parse import urlencode

import orjson

from harness.core import errors
from harness.core.errors import Failure
from harness.dialects import Request

ACCEPT = "application/json"


class HttpRequest(NamedTuple):
    """One request as a client sends it: method, absolute URL, headers and body bytes."""

    method: str
    url: str
    headers: dict[str, str]
    body: bytes | None


def decode(body: bytes) -> Any:
    """A reply body as JSON; anything else is a protocol deviation. JSON encoded twice comes back as the string
    it is: the dialect's parsers unwrap it and count it (lenient.unwrap_json), so it is never absorbed unseen."""
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        raise Failure(errors.PROTOCOL, f"response is not JSON: {body[:80]!r}") from None


def url_for(base_url: str, path: str) -> str:
    """The URL of a request path: relative to the base URL, or as is when absolute (a discovered 3.1.0 tokenURL)."""
    if path.startswith(("http://", "https://")):
        return path
    return base_url.rstrip("/") + path


def encode(req: Request) -> tuple[bytes | None, str | None]:
    """Body bytes and content type of a request."""
    if req.form is not None:
        return urlencode(req.form).encode(), "application/x-www-form-urlencoded"
    if req.json is not None:
        return orjson.dumps(req.json), "application/json"
    return None, None


def bearer(token: str) -> str:
    """The Authorization value of a bearer token (RFC 6750)."""
    return f"Bearer {token}"


def headers(token: str | None, content_type: str | None) -> dict[str, str]:
    """The headers of every harness request: Accept, the body's Content-Type, the bearer token if any."""
    out = {"Accept": ACCEPT}
    if content_type is not None:
        out["Content-Type"] = content_type
    if token:
        out["Authorization"] = bearer(token)
    return out


def prepare(base_url: str, req: Request, token: str | None = None) -> HttpRequest:
    """A dialect's request as a client sends it to a target at base_url."""
    body, content_type = encode(req)
    return HttpRequest(req.method, url_for(base_url, req.path), headers(token, content_type), body)


def retry_after(value: str | None) -> float | None:
    """A Retry-After header in seconds (the delay-seconds form; an HTTP date or junk is ignored)."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        return None
