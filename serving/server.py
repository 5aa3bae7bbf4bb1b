"""uvicorn glue: run the gateway in the foreground (the CLI) or in a background thread (tests,
benchmarks)."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from types import TracebackType

import uvicorn
from fastapi import FastAPI

from llm.errors import BadInputError
from serving.app import create_app
from serving.auth import load_keyring
from serving.backends import create_backend
from serving.config import ServeConfig

logger = logging.getLogger("serving.gateway")


def _uvicorn_config(app: FastAPI, host: str, port: int, log_level: str) -> uvicorn.Config:
    return uvicorn.Config(
        app,
        host=host,
        port=port,
        log_level=log_level,
        # the audit log records every request; uvicorn's access log would only repeat it
        access_log=False,
        # exposes nothing about the server in responses
        server_header=False,
        timeout_graceful_shutdown=5,
        lifespan="on",
        # uvicorn's default log config runs logging.config.dictConfig, which closes every
        # handler the process already has (the embedding program's, pytest's); its loggers
        # propagate to whatever the process configured instead
        log_config=None,
    )


def run_server(config: ServeConfig, announce: Callable[[str], None] | None = None) -> None:
    """Build the backend and app from ``config`` and serve until interrupted.

    Args:
        config: the gateway settings (backend, model, host, port, keys, limits).
        announce: called once with the startup line (URL, models, audit log path).

    Raises:
        BadInputError: the model is not set, keys are missing on a non-loopback host, or the
            backend failed to start.
    """
    # keys are checked before the backend is built: refusing must not cost a model load
    keys = load_keyring(config)
    backend = create_backend(config.backend, config.backend_settings())
    app = create_app(backend, config, keys)
    server = uvicorn.Server(_uvicorn_config(app, config.host, config.port, config.log_level))
    if announce is not None:
        host = f"[{config.host}]" if ":" in config.host else config.host
        announce(
            f"serving {', '.join(config.served_names())} ({config.backend}) at "
            f"http://{host}:{config.port}/v1; audit log: {config.audit_log}"
        )
    server.run()
    if not server.started:
        raise BadInputError(
            f"the gateway did not start ({config.backend} backend); see the log above"
        )


class BackgroundServer:
    """A real uvicorn server for ``app`` in a daemon thread, on a free loopback port.

    ``with BackgroundServer(app) as server: server.url`` waits until the app's
    lifespan (backend start) is done, and stops the server on exit.

    Args:
        app: the ASGI app.
        host: bind address.
        port: port, 0 for a free one.
        start_timeout_s: how long to wait for start-up (model loading included).
        log_level: uvicorn's log level.
    """

    def __init__(
        self,
        app: FastAPI,
        host: str = "127.0.0.1",
        port: int = 0,
        start_timeout_s: float = 300.0,
        log_level: str = "warning",
    ) -> None:
        self.app = app
        self.host = host
        self.start_timeout_s = start_timeout_s
        self.server = uvicorn.Server(_uvicorn_config(app, host, port, log_level))
        self._thread = threading.Thread(target=self._run, name="gateway-server", daemon=True)
        self._error: BaseException | None = None
        self.url = ""

    def _run(self) -> None:
        try:
            self.server.run()
        except BaseException as exc:
            self._error = exc

    def start(self) -> str:
        """Start the server and return its base URL (``http://host:port``, no ``/v1``).

        Raises:
            RuntimeError: start-up failed or took longer than ``start_timeout_s``.
        """
        self._thread.start()
        deadline = time.monotonic() + self.start_timeout_s
        while not self.server.started:
            if not self._thread.is_alive():
                raise RuntimeError(f"gateway failed to start: {self._error!r}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"gateway did not start within {self.start_timeout_s} s")
            time.sleep(0.02)
        sockets = [s for server in self.server.servers for s in server.sockets]
        port = sockets[0].getsockname()[1]
        host = f"[{self.host}]" if ":" in self.host else self.host
        self.url = f"http://{host}:{port}"
        return self.url

    def stop(self) -> None:
        """Stop the server (runs the lifespan shutdown: backend close) and join the thread."""
        self.server.should_exit = True
        self._thread.join(timeout=30)

    def __enter__(self) -> BackgroundServer:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()
