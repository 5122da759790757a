"""Serve the API with uvicorn, in-process: ``run_api(settings)`` for ``sleeplm api``.

uvicorn's own shutdown waits for open responses to finish, and the live feed never finishes by
itself; ``ApiServer`` therefore sets the app's ``closing`` flag the moment a stop is requested, so
open feeds end within one poll and shutdown completes. It also returns normally on SIGINT/SIGTERM
(plain uvicorn re-raises the signal after shutting down, which would turn a clean stop into a
KeyboardInterrupt or a kill by SIGTERM).

Logs: uvicorn's access log is off (it writes every path and query string: bed ids, search text, a token
sent as ``?token=``); the API's own ``sleeplm.access`` (route template, status, token name) and
``sleeplm.api`` (unhandled errors, without their messages) go to stderr with uvicorn's lines, timestamped
(``sleeplm up`` sends the API's stderr to ``<data-dir>/logs/api.log``).

Slow requests: uvicorn (0.55, h11) has no timeout on reading a request's headers, so a client that
sends half a request line keeps its connection (and a slot) forever. ``HeaderTimeoutProtocol`` closes a
connection whose request headers are not complete ``header_timeout_s`` after its first byte (after
the connection opened, for the first request); idle keep-alive connections close after
``KEEP_ALIVE_S``; h11 refuses headers over 16 KB.
"""

from __future__ import annotations

import asyncio
import logging
import signal
import sys
from types import FrameType
from typing import Any

import h11
import uvicorn
from fastapi import FastAPI
from uvicorn.protocols.http.h11_impl import H11Protocol

from dashboards.api.app import create_app
from plumbing.settings import Settings

#: Longest wait for open responses at shutdown before uvicorn cancels them.
GRACEFUL_S = 5
#: An idle keep-alive connection is closed after this many seconds (uvicorn's default, stated).
KEEP_ALIVE_S = 5
#: Default bound on receiving one request's headers (``SLEEPLM_API_HEADER_TIMEOUT_S``).
HEADER_TIMEOUT_S = 10.0

log = logging.getLogger("sleeplm.api")


class _Stderr(logging.StreamHandler):
    """A stream handler on whatever ``sys.stderr`` is when a line is written (not when logging was set up)."""

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> Any:
        return sys.stderr

    @stream.setter
    def stream(self, _value: Any) -> None:
        pass


def log_config() -> dict[str, Any]:
    """uvicorn's ``log_config``: its own lines, the access log of the API and its error lines, all on stderr
    with a timestamp; uvicorn's access logger gets no handler (and ``access_log=False`` keeps it silent)."""
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "plain": {"()": "plumbing.logs.IsoFormatter"},  # ISO time with offset on every line
        },
        "handlers": {"stderr": {"()": _Stderr, "formatter": "plain"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "uvicorn.access": {"handlers": [], "level": "CRITICAL", "propagate": False},
            "sleeplm.access": {"handlers": ["stderr"], "level": "INFO", "propagate": True},
            "sleeplm.api": {"handlers": ["stderr"], "level": "INFO", "propagate": True},
            "dashboards": {"handlers": ["stderr"], "level": "INFO", "propagate": True},
        },
    }


class HeaderTimeoutProtocol(H11Protocol):
    """uvicorn's h11 protocol plus a bound on the time to receive a request's headers (module docstring)."""

    header_timeout_s = HEADER_TIMEOUT_S

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._header_timer: asyncio.TimerHandle | None = None
        self._arm_header_timer()

    def data_received(self, data: bytes) -> None:
        waiting = self.conn.their_state is h11.IDLE
        if waiting and self._header_timer is None:
            self._arm_header_timer()  # first byte of a keep-alive connection's next request
        super().data_received(data)
        if self.conn.their_state is not h11.IDLE:
            self._cancel_header_timer()  # the headers are in

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        super().connection_lost(exc)

    def _arm_header_timer(self) -> None:
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._headers_too_slow)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _headers_too_slow(self) -> None:
        self._header_timer = None
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            log.warning("closed a connection: its request headers took over %g s", self.header_timeout_s)
            self.transport.close()


class ApiServer(uvicorn.Server):
    """A uvicorn server for the API app that ends live feeds on shutdown and exits 0 on a signal."""

    def __init__(
        self,
        app: FastAPI,
        host: str,
        port: int,
        log_level: str = "info",
        header_timeout_s: float | None = None,
    ) -> None:
        """``header_timeout_s``: default the app's ``settings.api_header_timeout_s``."""
        self.app = app
        if header_timeout_s is None:
            settings = getattr(app.state, "settings", None)
            header_timeout_s = settings.api_header_timeout_s if settings is not None else HEADER_TIMEOUT_S
        protocol = type("HeaderTimeoutProtocol", (HeaderTimeoutProtocol,), {"header_timeout_s": header_timeout_s})
        config = uvicorn.Config(
            app,
            host=host,
            port=port,
            log_level=log_level,
            log_config=log_config(),
            access_log=False,
            http=protocol,
            timeout_keep_alive=KEEP_ALIVE_S,
            timeout_graceful_shutdown=GRACEFUL_S,
            lifespan="on",
        )
        super().__init__(config)

    def handle_exit(self, sig: int, frame: FrameType | None) -> None:
        self.app.state.closing.set()
        if self.should_exit and sig == signal.SIGINT:
            self.force_exit = True  # a second Ctrl-C: stop waiting for open connections
        self.should_exit = True

    def stop(self) -> None:
        """Ask the server to shut down (from another thread; what a signal does)."""
        self.app.state.closing.set()
        self.should_exit = True


def run_api(settings: Settings | None = None) -> None:
    """Serve ``create_app(settings)`` on ``settings.api_host:api_port`` until SIGINT/SIGTERM, then return."""
    settings = settings or Settings()
    ApiServer(create_app(settings), settings.api_host, settings.api_port).run()
