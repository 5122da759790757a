"""Run the Faust app as a worker process (``sleeplm worker``): no web server, stops on SIGINT/SIGTERM."""

from __future__ import annotations

import faust

from plumbing.logs import dict_config
from plumbing.settings import Settings
from stream_agents.app import create_app


def run_worker(settings: Settings, runtime: str | None = None, loglevel: str = "warning") -> None:
    """Consume until stopped; a clean stop commits what was acked, a kill replays from the last commit.

    ``runtime`` None: ``chosen_runtime`` (SLEEPLM_RUNTIME, else the model if its checkpoint exists).
    """
    app = create_app(settings, runtime_name=runtime)
    level = loglevel.upper()
    # Faust's own log setup is colorlog on a terminal; ours stamps every line with its ISO time
    worker = faust.Worker(app, loglevel=level, quiet=True, redirect_stdouts=False, logging_config=dict_config(level))
    # its start-up spinner writes cursor codes (hide, backspace, show) even when stdout is a log file: a
    # worker's log held nothing else
    worker.spinner = None
    worker.execute_from_commandline()
