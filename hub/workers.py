"""Entry points of the worker processes that `crmhub up` supervises.

Each runs in its own process (`crmhub worker NAME`), stops cleanly on SIGTERM/SIGINT and
takes its settings from the environment the supervisor hands it.
"""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType

from hub.settings import Settings

log = logging.getLogger(__name__)


def stop_event_on_signals() -> threading.Event:
    stop = threading.Event()

    def handler(signum: int, _frame: FrameType | None) -> None:
        log.info("signal %s: stopping", signal.Signals(signum).name)
        stop.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    return stop


def run_connect_worker(settings: Settings, stop: threading.Event | None = None) -> None:
    """Run the connectors registered in the connect state (hub/connect_worker.py); with none
    registered, register the built-in sales spreadsheet connector on the drop directory."""
    from hub.connect_worker import run_connect_worker as run

    run(settings, stop or stop_event_on_signals())


def run_projection_worker(settings: Settings) -> None:
    from projections.worker import run_projection_worker as run

    run(settings)


def run_processor_worker(settings: Settings) -> None:
    from hub.processors.app import run_processor_worker as run

    run(settings)


def run_api_server(settings: Settings) -> None:
    import uvicorn

    from hub.api import create_api

    uvicorn.run(
        create_api(settings),
        host=settings.api_host,
        port=settings.api_port,
        log_level="warning",
        access_log=False,
    )


WORKERS = {
    "api": run_api_server,
    "processor": run_processor_worker,
    "projection": run_projection_worker,
    "connect": run_connect_worker,
}
