"""The SleepLM Monitor HTTP API (FastAPI): beds, epochs, hypnograms, a live feed and ``/metrics``."""

from dashboards.api.app import create_app
from dashboards.api.server import ApiServer, run_api

__all__ = ["ApiServer", "create_app", "run_api"]
