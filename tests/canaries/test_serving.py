"""PHI canaries through the gateway on the transformers backend and the openai upstream backend.

The transformers gateway runs the tiny random Llama in this process; an ``openai`` gateway
forwards to it, so one run covers both backends and the upstream's refusals travelling
back. Everything either gateway says is captured: log records at DEBUG, this process's
stdout/stderr (the uvicorn servers run in threads here), both audit logs, both /metrics.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from serving.backends.base import BackendSettings
from tests.canaries.conftest import assert_no_canary
from tests.canaries.serving_probe import assert_gateway_clean, send_canary_requests
from tests.serving.backends.conftest import text_model  # noqa: F401 (fixture)
from tests.serving.conftest import LiveGateway, live_gateway  # noqa: F401 (fixture)
from tests.train.conftest import chat_tokenizer  # noqa: F401 (fixture)

pytestmark = pytest.mark.slow


def test_transformers_and_openai_upstream_gateways_say_no_canary(
    live_gateway: LiveGateway,  # noqa: F811
    text_model: Path,  # noqa: F811
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    caplog.set_level(logging.DEBUG)
    local = live_gateway(
        "transformers", BackendSettings("tiny", str(text_model), options={"torch_threads": 1})
    )
    upstream = live_gateway(
        "openai", BackendSettings("clinic", local.v1, options={"upstream_model": "tiny"})
    )
    responses = send_canary_requests(local, "tiny")
    responses += send_canary_requests(upstream, "clinic")
    assert {line["status"] for line in upstream.audit_lines()} >= {200, 400, 404}
    assert_gateway_clean(local, responses, local.audit_log.read_text())
    assert_gateway_clean(upstream, [], upstream.audit_log.read_text())
    assert_no_canary("\n".join(r.getMessage() for r in caplog.records), "a log record")
    assert_no_canary(caplog.text, "the formatted log output")
    out, err = capfd.readouterr()
    assert_no_canary(out + err, "the gateways' stdout/stderr")
