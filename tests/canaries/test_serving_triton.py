"""PHI canaries through the gateway on the triton backend: the Triton server's log included."""

from __future__ import annotations

import logging

import pytest

from tests.real_components import reason

pytest.importorskip("tritonclient.grpc.aio", reason=reason("triton", "no tritonclient"))

from serving.backends.base import BackendSettings
from tests.canaries.conftest import assert_no_canary
from tests.canaries.serving_probe import (
    assert_gateway_clean,
    send_canary_requests,
)
from tests.serving.backends.conftest import text_model  # noqa: F401
from tests.serving.backends.triton_fixtures import (  # noqa: F401
    MODEL_NAME,
    TritonServer,
    triton_repository,
    triton_server,
)
from tests.serving.conftest import LiveGateway, live_gateway  # noqa: F401
from tests.train.conftest import chat_tokenizer  # noqa: F401

pytestmark = pytest.mark.slow


def test_triton_gateway_and_server_say_no_canary(
    live_gateway: LiveGateway,  # noqa: F811
    triton_server: TritonServer,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    settings = BackendSettings("tiny", triton_server.grpc_url, options={"triton_model": MODEL_NAME})
    url = live_gateway("triton", settings)
    responses = send_canary_requests(url, "tiny")
    assert triton_server.process.poll() is None, "the Triton server died"
    assert_gateway_clean(url, responses, url.audit_log.read_text())
    assert_no_canary(triton_server.log.read_bytes(), "the Triton server's log")
    assert_no_canary(caplog.text, "the gateway's log")
    out, err = capfd.readouterr()
    assert_no_canary(out + err, "the gateway's stdout/stderr")
