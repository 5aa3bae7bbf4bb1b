"""serving.server: starting a server leaves the process's logging as it was."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI

from serving.server import BackgroundServer


def test_a_server_does_not_close_the_processs_log_handlers(tmp_path: Path) -> None:
    # uvicorn's default log config (logging.config.dictConfig) closes every existing
    # handler: pytest's own, or an embedding program's, then fail on the next record
    handler = logging.FileHandler(tmp_path / "host.log")
    logging.getLogger().addHandler(handler)
    try:
        server = BackgroundServer(FastAPI())
        server.start()
        server.stop()
        assert handler.stream is not None and not handler.stream.closed
        logging.getLogger("host").warning("still logging")
    finally:
        logging.getLogger().removeHandler(handler)
        handler.close()
    assert "still logging" in (tmp_path / "host.log").read_text()
