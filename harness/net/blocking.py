"""The blocking HTTP client of the operator's setup calls, for the supervisor's process (stdlib urllib).

Edge, deliberately blocking: the supervisor owns no event loop, session or thread. Headers come from
harness.net.wire like every other client's; a request that gets no HTTP status back is a classified Failure.
"""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from typing import NamedTuple

from harness.dialects import Request
from harness.net.failures import classify_blocking
from harness.net.wire import prepare


class HttpReply(NamedTuple):
    status: int
    body: bytes
    content_type: str = ""  # the Content-Type header, as sent ("" when absent)


def call(
    base_url: str, req: Request, token: str | None = None, timeout_s: float = 10.0, context: ssl.SSLContext | None = None
) -> HttpReply:
    """One request; any HTTP status is a reply, a failure to get one raises Failure (message: urllib's reason)."""
    r = prepare(base_url, req, token)
    request = urllib.request.Request(r.url, data=r.body, method=r.method, headers=r.headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:  # noqa: S310 - URL validated by the profile
            return HttpReply(resp.status, resp.read(), resp.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        return HttpReply(exc.code, exc.read(), exc.headers.get("Content-Type", ""))
    except (urllib.error.URLError, OSError) as exc:
        raise classify_blocking(exc) from None
