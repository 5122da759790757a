"""ASGI middleware of the API: request size limit, security headers, an access log without identifiers.

* **Size limit.** Every body the API accepts is a small JSON object (a watch rule, thresholds, a token
  name), so anything over ``max_bytes`` is refused with 413 before a route parses it; a body without a
  Content-Length is read up to the limit and refused the moment it passes it.
* **Headers.** The web page is served by the API itself, so the Content-Security-Policy allows only
  our own origin (no CDN, no inline script); API answers are never cached (patient data on shared
  ward computers).
* **Errors.** An exception no handler turned into an answer becomes a 500 here, inside the headers
  middleware, so it carries the security headers too (Starlette's own 500 is sent outside every
  middleware, without them). The log line names the exception type, the route template and where in the
  code it was raised (file, line, function), never the exception's message: a database error's message
  holds the query's parameters (bed ids, search text).
* **Access log.** One line per request with the route *template* (``/api/beds/{bed_id}/epochs``), never
  the path or query, which carry bed and recording ids and search text: patient identifiers stay out of
  logs. The caller is logged by token name, the status and the duration. uvicorn's own access log (which
  writes the full path and query) is off (``dashboards.api.server``), and this one reaches a handler there.
"""

from __future__ import annotations

import json
import logging
import time
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

log = logging.getLogger("sleeplm.access")
errors = logging.getLogger("sleeplm.api")

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

CONTENT_SECURITY_POLICY = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
)
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
]


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


class _HttpMiddleware:
    """Passes anything but HTTP (lifespan, websockets) straight through; subclasses ``handle`` HTTP."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        await self.handle(scope, receive, send)

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        raise NotImplementedError


class BodyLimit(_HttpMiddleware):
    """413 for request bodies larger than ``max_bytes`` (see the module docstring)."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        super().__init__(app)
        self.max_bytes = max_bytes

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        too_big = f"request body over {self.max_bytes} bytes"
        headers = dict(scope.get("headers") or [])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_bytes):
            await _refuse(send, 413, too_big)
            return
        if scope.get("method") in ("GET", "HEAD", "DELETE", "OPTIONS") and declared is None:
            await self.app(scope, receive, send)
            return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            size += len(message.get("body", b""))
            if size > self.max_bytes:
                await _refuse(send, 413, too_big)
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                break
        body = b"".join(chunks)
        delivered = False

        async def replay() -> Message:
            nonlocal delivered
            if not delivered:
                delivered = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        await self.app(scope, replay, send)


def route_template(scope: Scope) -> str:
    """The matched route's path template, ``/static/*`` for static files, ``?`` when nothing matched."""
    route = scope.get("route")
    return getattr(route, "path", None) or ("/static/*" if scope.get("path", "").startswith("/static") else "?")


class SecurityHeaders(_HttpMiddleware):
    """Adds ``SECURITY_HEADERS`` to every response, and ``Cache-Control: no-store`` to /api and /metrics; turns
    an unhandled exception into a 500 that has them too (see the module docstring)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        private = scope.get("path", "").startswith(("/api", "/metrics", "/openapi"))
        started = False

        async def with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers") or [])
                headers += SECURITY_HEADERS
                if private:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        try:
            await self.app(scope, receive, with_headers)
        except Exception as exc:  # noqa: BLE001 - every failure must still be answered (and logged without data)
            where = " <- ".join(
                f"{frame.filename}:{frame.lineno} in {frame.name}"
                for frame in reversed(traceback.extract_tb(exc.__traceback__)[-4:])
            )
            errors.error(
                "unhandled %s in %s %s (message withheld: it may hold patient data); raised at %s",
                type(exc).__name__,
                scope.get("method"),
                route_template(scope),
                where,
            )
            if not started:
                await with_headers(_error_start(500))
                await send({"type": "http.response.body", "body": _INTERNAL_ERROR})


_INTERNAL_ERROR = json.dumps({"detail": "internal error; the API's log names where it happened"}).encode()


def _error_start(status: int) -> Message:
    return {
        "type": "http.response.start",
        "status": status,
        "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(_INTERNAL_ERROR)).encode())],
    }


class AccessLog(_HttpMiddleware):
    """One log line per request: method, route template, status, milliseconds, caller (see the docstring)."""

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        started = time.perf_counter()
        status = 500

        async def capture(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, capture)
        finally:
            state = scope.get("state") or {}
            principal = state.get("principal")
            who = principal.name if principal is not None else "-"
            log.info(
                "%s %s %d %.0fms %s",
                scope.get("method"),
                route_template(scope),
                status,
                (time.perf_counter() - started) * 1000,
                who,
            )
