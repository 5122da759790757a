"""Run the Faust app as a worker process (``sleeplm worker``): no web server, stops on SIGINT/SIGTERM."""

from __future__ import annotations

import faust

from services.settings import Settings
from stream_agents.app import create_app


def run_worker(settings: Settings, runtime: str | None = None, loglevel: str = "warning") -> None:
    """Consume until stopped; a clean stop commits what was acked, a kill replays from the last commit.

    ``runtime`` None: ``settings.inference_runtime`` (SLEEPLM_RUNTIME, else the model if its checkpoint exists).
    """
    app = create_app(settings, runtime_name=runtime)
    worker = faust.Worker(app, loglevel=loglevel.upper(), quiet=True, redirect_stdouts=False)
    worker.execute_from_commandline()
