"""PHI canaries through the gateway on the vllm backend: the vLLM engine's own output included.

The gateway is the one of ``tests/serving/test_live_vllm.py`` (its module fixture). The
engine is started at DEBUG (``VLLM_LOGGING_LEVEL``) with this process's stdout and stderr
pointed at a file while it starts, so the engine core process it spawns writes
everything it says there; the main process's ``vllm`` loggers are captured at DEBUG too.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from tests.real_components import reason

pytest.importorskip("vllm", reason=reason("vllm", "vLLM is not installed"))

from tests.canaries.conftest import assert_no_canary
from tests.canaries.serving_probe import (
    assert_gateway_clean,
    send_canary_requests,
)
from tests.serving.test_live_vllm import Gateway, gateway  # noqa: F401
from tests.train.conftest import chat_tokenizer  # noqa: F401

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


@contextmanager
def output_to(path: Path) -> Iterator[None]:
    """Point file descriptors 1 and 2 at ``path`` (children started meanwhile keep them)."""
    saved = os.dup(1), os.dup(2)
    with path.open("ab") as log:
        os.dup2(log.fileno(), 1)
        os.dup2(log.fileno(), 2)
    try:
        yield
    finally:
        os.dup2(saved[0], 1)
        os.dup2(saved[1], 2)
        os.close(saved[0])
        os.close(saved[1])


@pytest.fixture(scope="module")
def engine_log(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Where the engine core process writes its stdout and stderr."""
    return tmp_path_factory.mktemp("vllm-engine") / "engine.log"


@pytest.fixture(scope="module")
def debug_gateway(request: pytest.FixtureRequest, engine_log: Path) -> Gateway:
    """The live vLLM gateway, its engine started at DEBUG with its output in ``engine_log``."""
    with pytest.MonkeyPatch.context() as patch, output_to(engine_log):
        patch.setenv("VLLM_LOGGING_LEVEL", "DEBUG")
        started: Gateway = request.getfixturevalue("gateway")
    return started


def test_vllm_gateway_and_engine_say_no_canary(
    debug_gateway: Gateway,
    engine_log: Path,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    vllm_logger = logging.getLogger("vllm")  # vLLM's loggers do not propagate to the root
    vllm_logger.addHandler(caplog.handler)
    level = vllm_logger.level
    vllm_logger.setLevel(logging.DEBUG)
    caplog.set_level(logging.DEBUG)
    try:
        responses = send_canary_requests(debug_gateway.server.url, "tiny")
    finally:
        vllm_logger.removeHandler(caplog.handler)
        vllm_logger.setLevel(level)
    assert debug_gateway.backend.ready(), "the engine died"
    said: Any = engine_log.read_bytes()
    assert said.strip(), "the engine said nothing: its output was not captured"
    assert_no_canary(said, "the vLLM engine's output")
    assert_gateway_clean(debug_gateway.server.url, responses, debug_gateway.audit_log.read_text())
    assert_no_canary(caplog.text, "a log record (gateway or vLLM)")
    out, err = capfd.readouterr()
    assert_no_canary(out + err, "the gateway's stdout/stderr")
