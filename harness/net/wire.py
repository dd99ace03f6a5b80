"""Bytes on the wire: request URLs, JSON and form encoding of dialect requests, lenient JSON decoding of replies.

Edge (orjson), shared by the async transport and the supervisor's blocking operator calls.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

import orjson

from harness.core import errors
from harness.core.errors import Failure
from harness.dialects import Request


def decode(body: bytes) -> Any:
    """A reply body as JSON, leniently: JSON encoded twice is unwrapped; anything else is a protocol deviation."""
    try:
        doc = orjson.loads(body)
        if isinstance(doc, str) and doc[:1] in ("{", "["):
            doc = orjson.loads(doc)
        return doc
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
