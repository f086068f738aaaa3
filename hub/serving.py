"""A real uvicorn server on 127.0.0.1 in a background thread: the local API simulators of
the demo, the tests' servers."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import uvicorn

from hub.broker import free_port


@contextmanager
def serve(app: Any, *, name: str = "server", port: int = 0) -> Iterator[str]:
    """Serve the ASGI ``app`` until the block ends; yields its base URL."""
    port = port or free_port()
    # ws="none": no websocket routes, and no websockets import (its deprecation warnings
    # would fail a warnings-as-errors run).
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", ws="none", access_log=False
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name=f"{name}-{port}", daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        if not thread.is_alive():
            raise RuntimeError(f"{name}: uvicorn exited during start-up")
        if time.monotonic() > deadline:
            raise RuntimeError(f"{name}: uvicorn did not start within 10 s")
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        thread.join(10)
