"""The blocking HTTP client of the operator's setup calls, for the supervisor's process (stdlib urllib).

Edge, deliberately blocking: the supervisor owns no event loop or session. Headers come from harness.net.wire
like every other client's; a request that gets no HTTP status back is a classified Failure.

A call from the main thread is made in a short-lived daemon thread the main thread waits on: a Ctrl-C during
set-up raises `Interrupted` in that wait, never between urllib's `socket()` and `connect()` returning (where
no one closes the socket and the interpreter's exit reports it unclosed), nor inside `Thread.start()` (signals
are blocked while it runs). The thread holds no loop; an interrupted call ends on its own timeout, or with
the process.
"""

from __future__ import annotations

import signal
import ssl
import threading
import urllib.error
import urllib.request
from concurrent.futures import Future
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
    if threading.current_thread() is not threading.main_thread():
        return _call(base_url, req, token, timeout_s, context)
    reply: Future[HttpReply] = Future()

    def run() -> None:
        try:
            reply.set_result(_call(base_url, req, token, timeout_s, context))
        except BaseException as exc:  # noqa: BLE001 - handed to the caller's thread as it is
            reply.set_exception(exc)

    thread = threading.Thread(target=run, name="harness-setup-call", daemon=True)
    masked = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGINT, signal.SIGTERM})  # not inside start()
    try:
        thread.start()  # the thread inherits the mask: the main thread's handler alone sees signals
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, masked)
    return reply.result()  # a signal handler's Interrupted is raised here, in the main thread


def _call(base_url: str, req: Request, token: str | None, timeout_s: float, context: ssl.SSLContext | None) -> HttpReply:
    r = prepare(base_url, req, token)
    request = urllib.request.Request(r.url, data=r.body, method=r.method, headers=r.headers)
    try:
        with urllib.request.urlopen(request, timeout=timeout_s, context=context) as resp:  # noqa: S310 - URL validated by the profile
            return HttpReply(resp.status, resp.read(), resp.headers.get("Content-Type", ""))
    except urllib.error.HTTPError as exc:
        return HttpReply(exc.code, exc.read(), exc.headers.get("Content-Type", ""))
    except (urllib.error.URLError, OSError) as exc:
        raise classify_blocking(exc) from None
