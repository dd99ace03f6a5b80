"""What every API handler of the embedded VTN shares (3.0.1 and 3.1.0): problem answers, paging, bodies, ids, time.

Edge (aiohttp). Bad client input raises `Problem`, which the problems middleware turns into a 4xx with a
`problem` body — never a 500.
"""

from __future__ import annotations

import time
from datetime import datetime, timezone
from http import HTTPStatus
from typing import Awaitable, Callable, Mapping

import orjson
from aiohttp import web

from harness.vtn import schema

JSON = "application/json"
MAX_LIMIT = 50
INT32_MAX = 2**31 - 1  # skip and limit are int32 in the spec

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Problem(Exception):
    """An HTTP error answered with a `problem` body {type, title, status, detail}."""

    def __init__(self, status: int, detail: str, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(status, detail)
        self.status = status
        self.detail = detail
        self.headers = headers


def problem_response(status: int, detail: str, headers: Mapping[str, str] | None = None) -> web.Response:
    body = orjson.dumps({"type": "about:blank", "title": _reason(status), "status": status, "detail": detail})
    return web.Response(status=status, body=body, content_type=JSON, headers=headers)


def _reason(status: int) -> str:
    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


def json_response(obj: object, status: int = 200) -> web.Response:
    return web.Response(status=status, body=orjson.dumps(obj), content_type=JSON)


_last_now: tuple[int, str] = (-1, "")


def now() -> str:
    """RFC 3339 UTC with milliseconds; formatted once per millisecond however many objects are stamped."""
    global _last_now
    ms = time.time_ns() // 1_000_000
    if ms != _last_now[0]:
        dt = datetime.fromtimestamp(ms / 1000, timezone.utc)
        _last_now = (ms, f"{dt:%Y-%m-%dT%H:%M:%S}.{ms % 1000:03d}Z")
    return _last_now[1]


def paging(request: web.Request) -> tuple[int, int]:
    q = request.query
    return int_param(q, "skip", 0, 0, INT32_MAX), int_param(q, "limit", MAX_LIMIT, 0, MAX_LIMIT)


def int_param(q: Mapping[str, str], name: str, default: int, lo: int, hi: int) -> int:
    raw = q.get(name)
    if raw is None:
        return default
    try:
        value = int(raw)
    except ValueError:
        raise Problem(400, f"{name} must be an integer, got {raw[:32]!r}") from None
    if not lo <= value <= hi:
        raise Problem(400, f"{name} must be {lo}..{hi}, got {value}")
    return value


async def json_body(request: web.Request) -> object:
    raw = await request.read()
    if not raw.strip():
        raise Problem(400, "request body is empty; expected a JSON object")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise Problem(400, f"request body is not valid JSON: {exc}") from None


def path_id(request: web.Request, name: str) -> str:
    value = request.match_info[name]
    if not schema.OBJECT_ID.match(value):
        raise Problem(400, f"{name} must be 1..128 of [a-zA-Z0-9_-], got {value[:64]!r}")
    return value


def query_id(request: web.Request, name: str) -> str | None:
    """An object id given as a query filter (`?programID=..`), checked like a path id."""
    value = request.query.get(name)
    if value is not None and not schema.OBJECT_ID.match(value):
        raise Problem(400, f"{name} must be 1..128 of [a-zA-Z0-9_-], got {value[:64]!r}")
    return value
