"""Serve the API with uvicorn, in-process: ``run_api(settings)`` for ``sleeplm api``.

uvicorn's own shutdown waits for open responses to finish, and the live feed never finishes by
itself; ``ApiServer`` therefore sets the app's ``closing`` flag the moment a stop is requested, so
open feeds end within one poll and shutdown completes. It also returns normally on SIGINT/SIGTERM
(plain uvicorn re-raises the signal after shutting down, which would turn a clean stop into a
KeyboardInterrupt or a kill by SIGTERM).
"""

from __future__ import annotations

import signal
from types import FrameType

import uvicorn
from fastapi import FastAPI

from dashboards.api.app import create_app
from services.settings import Settings

#: Longest wait for open responses at shutdown before uvicorn cancels them.
GRACEFUL_S = 5


class ApiServer(uvicorn.Server):
    """A uvicorn server for the API app that ends live feeds on shutdown and exits 0 on a signal."""

    def __init__(self, app: FastAPI, host: str, port: int, log_level: str = "info") -> None:
        self.app = app
        config = uvicorn.Config(
            app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=GRACEFUL_S, lifespan="on"
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
