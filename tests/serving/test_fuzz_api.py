"""The gateway against generated requests: schemathesis over its own ``/openapi.json``.

A live gateway (real uvicorn on loopback, keys on) is driven with requests
schemathesis generates from the schema the gateway serves: for every
operation, bodies that fit the schema, and for the two generation endpoints
also bodies that do not. Every response goes through schemathesis's checks: no
5xx, a documented status and content type, a body (and each SSE event) that
matches the schema (so every error is OpenAI's ``{"error": {...}}``),
schema-valid data accepted and invalid data refused, 401 without the key.

Two gateways: the FakeBackend (a few hundred cases, the HTTP layer) and the
transformers backend on the tiny model (fewer cases; it found a sampling bug
the double cannot show). Hypothesis is derandomized, so runs are reproducible
and bounded.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from pathlib import Path

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction
from schemathesis.core.result import Ok
from schemathesis.specs.openapi.checks import positive_data_acceptance

from serving.backends.base import BackendSettings
from tests.serving.backends import conftest as backend_fixtures
from tests.serving.conftest import FakeBackend, LiveGateway, make_key
from tests.train.fixtures import TrainingAssets, training_assets  # noqa: F401

pytestmark = pytest.mark.slow

# the tiny random model of the backend tests
chat_tokenizer = backend_fixtures.chat_tokenizer
text_model = backend_fixtures.text_model

# examples per operation and mode (the GET operations take no input: one example each)
POSITIVE_EXAMPLES = 90
NEGATIVE_EXAMPLES = 50


def fuzz(
    url: str, key: str, positive: int, negative: int, excluded: Sequence[CheckFunction] = ()
) -> Counter[tuple[str, int]]:
    """Drive the gateway at ``url`` with cases generated from its own schema.

    Args:
        url: the gateway's base URL.
        key: the API key to send.
        positive: examples per operation that fit the schema.
        negative: examples per operation with a body that do not.
        excluded: schemathesis checks not to run.

    Returns:
        How many answers each ``(operation, status)`` got.

    Raises:
        schemathesis's failure group: a check failed (the report names the case and a curl).
    """
    raw = httpx.get(url + "/openapi.json").json()
    schema = schemathesis.openapi.from_dict(raw)
    auth = {"Authorization": f"Bearer {key}"}
    statuses: Counter[tuple[str, int]] = Counter()

    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # the served schema must load
        operation = result.ok()
        modes = [(GenerationMode.POSITIVE, positive)]
        if operation.body and negative:
            modes.append((GenerationMode.NEGATIVE, negative))
        for mode, examples in modes:

            @given(
                case=operation.as_strategy(mode, headers=auth),
                model=st.sampled_from(["tiny", "tiny-notes", None]),
            )
            @settings(
                max_examples=examples,
                deadline=None,
                derandomize=True,
                database=None,
                phases=[Phase.explicit, Phase.generate],
                suppress_health_check=list(HealthCheck),
            )
            def exercise(case: schemathesis.Case, model: str | None) -> None:
                # a generated name is almost never served (404): mostly ask for a served one.
                # Only a valid name is replaced, so a negative case stays negative.
                body = case.body
                valid_name = isinstance(body, dict) and isinstance(body.get("model"), str)
                if model and valid_name and isinstance(body, dict) and body["model"]:
                    body["model"] = model
                response = case.call_and_validate(
                    base_url=url, headers=auth, timeout=30, excluded_checks=list(excluded)
                )
                statuses[(f"{case.method} {case.path}", response.status_code)] += 1

            exercise()
    return statuses


def test_openapi_schema_is_served_and_describes_every_route(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    url = live_gateway(fake_backend, config_overrides={"max_tokens_cap": 50, "max_n": 3})
    schema = httpx.get(url + "/openapi.json").json()
    assert set(schema["paths"]) == {
        "/v1/chat/completions", "/v1/completions", "/v1/models", "/health", "/ready", "/metrics",
    }  # fmt: skip
    chat = schema["components"]["schemas"]["ChatCompletionRequest"]
    assert chat["properties"]["max_tokens"]["anyOf"][0]["maximum"] == 50
    assert chat["properties"]["n"]["maximum"] == 3
    assert chat["additionalProperties"] is False
    errors = schema["paths"]["/v1/completions"]["post"]["responses"]
    assert {"400", "401", "404", "413", "429", "503"} <= set(errors)
    # a wrong method is a 405 that says which one is right (HTTP requires the Allow header)
    wrong = httpx.get(url + "/v1/completions")
    assert wrong.status_code == 405 and wrong.headers["allow"] == "POST"
    assert wrong.json()["error"]["type"] == "invalid_request_error"
    # the docs pages stay off
    assert httpx.get(url + "/docs").status_code == 404
    assert httpx.get(url + "/redoc").status_code == 404


def test_generated_requests_get_documented_answers(
    live_gateway: LiveGateway, tmp_path: Path
) -> None:
    key, entry = make_key("fuzz")
    # a context no generated prompt fills, and small limits that keep generation short;
    # both are in the served schema, so a schema-valid request must be accepted
    backend = FakeBackend(
        BackendSettings(
            model_name="tiny", model_path="fake://tiny", adapters={"tiny-notes": tmp_path}
        ),
        max_len=10**9,
    )
    url = live_gateway(backend, keys=[entry], config_overrides={"max_tokens_cap": 8, "max_n": 3})
    statuses = fuzz(url, key, POSITIVE_EXAMPLES, NEGATIVE_EXAMPLES)

    total = sum(statuses.values())
    assert total >= 250, statuses
    assert not [status for (_, status) in statuses if status >= 500], statuses
    # both sides were reached: answers and refusals, on both generation endpoints
    for path in ("POST /v1/chat/completions", "POST /v1/completions"):
        assert statuses[(path, 200)] > 0 and statuses[(path, 400)] > 0, statuses
    assert httpx.get(url + "/ready").status_code == 200  # still healthy after it all


def test_generated_requests_on_the_transformers_backend(
    live_gateway: LiveGateway, text_model: Path
) -> None:
    key, entry = make_key("fuzz")
    settings = BackendSettings("tiny", str(text_model), {}, {})
    url = live_gateway(
        "transformers", settings, keys=[entry], config_overrides={"max_tokens_cap": 4, "max_n": 2}
    )
    # Valid-looking image data is still no image, and the tiny model's context is short:
    # those 400s are right, so the check that schema-valid data is accepted is left out.
    statuses = fuzz(url, key, positive=40, negative=0, excluded=[positive_data_acceptance])
    assert not [status for (_, status) in statuses if status >= 500], statuses
    for path in ("POST /v1/chat/completions", "POST /v1/completions"):
        assert statuses[(path, 200)] > 0, statuses
