"""TritonBackend against a real Triton server running the exported repository.

The server is pytriton's bundled ``tritonserver`` with the Python backend
loading ``config.pbtxt`` + ``model.py`` written by ``export_triton``
(tests/serving/backends/triton_fixtures.py). Greedy output is compared with
``model.generate`` of transformers on the same tiny random Llama.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from tests.real_components import reason

pytest.importorskip("tritonclient.grpc.aio", reason=reason("triton", "no tritonclient"))

from google.protobuf import text_format
from tritonclient.grpc import model_config_pb2

from llm.net import free_port
from serving.backends.base import (
    BackendSettings,
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
)
from serving.backends.triton_backend import (
    TritonBackend,
    build_inputs,
    grpc_address,
    triton_top_p,
)
from serving.errors import BackendUnavailableError, BadRequestError
from tests.serving.backends.triton_fixtures import (  # noqa: F401
    MODEL_NAME,
    TritonServer,
    triton_repository,
    triton_server,
)

MESSAGES = [{"role": "user", "content": "71 year old woman with COPD. Readmitted?"}]
PROMPT = "CHIEF COMPLAINT: cough and fever"


@pytest.fixture
def server(triton_server: TritonServer) -> TritonServer:  # noqa: F811
    """The session's Triton server."""
    return triton_server


@pytest.fixture
def repository(triton_repository: Path) -> Path:  # noqa: F811
    """The repository that server serves."""
    return triton_repository


def _request(rid: str, **sampling: Any) -> GenerationRequest:
    messages = sampling.pop("messages", None)
    prompt = sampling.pop("prompt", None)
    if messages is None and prompt is None:
        messages = MESSAGES
    return GenerationRequest(rid, "tiny", SamplingParams(**sampling), prompt, messages)


async def _collect(backend: TritonBackend, request: GenerationRequest) -> list[GenerationChunk]:
    return [chunk async for chunk in backend.generate(request)]


def _run(server: TritonServer, body: Any) -> Any:
    async def main() -> Any:
        backend = TritonBackend(
            BackendSettings("tiny", server.grpc_url, options={"triton_model": MODEL_NAME})
        )
        await backend.start()
        try:
            return await body(backend)
        finally:
            await backend.close()

    return asyncio.run(main())


def _hf_greedy(folder: Path, request: GenerationRequest) -> tuple[str, int, int]:
    """transformers' greedy text, completion tokens and prompt tokens for ``request``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tokenizer: Any = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(folder), local_files_only=True).eval()
    if request.messages is not None:
        ids = tokenizer.apply_chat_template(
            request.messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
        )["input_ids"]
    else:
        ids = tokenizer(request.prompt, return_tensors="pt")["input_ids"]
    with torch.no_grad():
        out = model.generate(
            ids, max_new_tokens=request.sampling.max_tokens, do_sample=False, use_cache=True
        )
    new = out[0, ids.shape[1] :].tolist()
    eos = set(model.generation_config.eos_token_id or [])
    if new and new[-1] in eos:
        new = new[:-1]
    return tokenizer.decode(new, skip_special_tokens=True), len(new), int(ids.shape[1])


# ---------------------------------------------------------------- no server needed


def test_tiny_top_p_and_extreme_seeds_reach_the_model_in_its_range() -> None:
    import numpy as np

    # float32 rounds 5e-324 to 0, which the model refuses; the gateway accepts it
    assert np.float32(5e-324) == 0
    assert triton_top_p(5e-324) == np.finfo(np.float32).tiny > 0
    assert triton_top_p(0.9) == np.float32(0.9) and triton_top_p(1.0) == 1.0

    def seed_of(seed: int, choice: int) -> int:
        request = _request("s", max_tokens=4, temperature=1.0, seed=seed, top_p=5e-324)
        inputs = {i.name(): i for i in build_inputs(request, choice)}
        top_p = np.frombuffer(inputs["top_p"]._get_content(), dtype=np.float32)[0]
        assert top_p == np.finfo(np.float32).tiny
        raw = inputs["seed"]._get_content()  # what goes over the wire
        return int(np.frombuffer(raw, dtype=np.int64)[0])

    # the largest seed plus a choice index used to overflow int64; a negative one meant
    # "unseeded" to the model
    assert seed_of(2**63 - 1, 1) == 0
    assert seed_of(-5, 0) == 2**63 - 5
    assert seed_of(7, 1) == 8


def test_grpc_address_accepts_grpc_urls_only() -> None:
    assert grpc_address("grpc://127.0.0.1:8001") == "127.0.0.1:8001"
    assert grpc_address("triton-host:8001") == "triton-host:8001"
    with pytest.raises(ValueError, match="gRPC address"):
        grpc_address("http://127.0.0.1:8000")


def test_adapters_are_refused_with_what_to_do() -> None:
    settings = BackendSettings("tiny", "grpc://127.0.0.1:1", adapters={"a": Path("/x")})
    with pytest.raises(ValueError, match="export each adapter run"):
        TritonBackend(settings)


def test_server_down_is_backend_unavailable() -> None:
    backend = TritonBackend(
        BackendSettings("tiny", f"grpc://127.0.0.1:{free_port()}", options={"connect_timeout_s": 3})
    )

    async def main() -> None:
        try:
            await backend.start()
        finally:
            await backend.close()

    with pytest.raises(BackendUnavailableError, match="does not answer"):
        asyncio.run(main())
    assert not backend.ready()


# ---------------------------------------------------------------- a real server


@pytest.mark.slow
def test_server_loads_the_exported_repository(server: TritonServer, repository: Path) -> None:
    exported = text_format.Parse(
        (repository / MODEL_NAME / "config.pbtxt").read_text(),
        model_config_pb2.ModelConfig(),
    )

    async def body(backend: TritonBackend) -> Any:
        assert backend.ready()
        return await backend._client.get_model_config(MODEL_NAME)

    loaded = _run(server, body).config
    assert loaded.backend == "python" and loaded.model_transaction_policy.decoupled
    assert [i.name for i in loaded.input] == [i.name for i in exported.input]
    assert [o.name for o in loaded.output] == [o.name for o in exported.output]
    served = TritonBackend(BackendSettings("tiny", server.grpc_url)).models()
    assert served[0].id == "tiny"


@pytest.mark.slow
@pytest.mark.parametrize("kind", ["chat", "completion"])
def test_greedy_text_equals_transformers_greedy(
    server: TritonServer, text_model: Path, kind: str
) -> None:
    extra: dict[str, Any] = {"prompt": PROMPT} if kind == "completion" else {}
    request = _request("greedy", max_tokens=12, temperature=0.0, **extra)
    chunks = _run(server, lambda b: _collect(b, request))
    text, completion_tokens, prompt_tokens = _hf_greedy(text_model, request)
    assert "".join(c.text for c in chunks) == text
    finals = [c for c in chunks if c.finish_reason is not None]
    assert len(finals) == 1
    assert finals[0].finish_reason == ("length" if completion_tokens == 12 else "stop")
    usage = chunks[-1].usage
    assert usage is not None and usage.prompt_tokens == prompt_tokens
    assert usage.completion_tokens == completion_tokens == sum(c.token_count for c in chunks)


@pytest.mark.slow
def test_tokens_stream_as_several_chunks_and_models_lists_the_context(
    server: TritonServer,
) -> None:
    async def body(backend: TritonBackend) -> tuple[list[GenerationChunk], Any]:
        chunks = await _collect(backend, _request("s", max_tokens=24, temperature=0.0))
        return chunks, backend.models()

    chunks, models = _run(server, body)
    assert len(chunks) > 3
    assert all(c.usage is None for c in chunks[:-1])
    assert models[0].max_model_len == 2048


@pytest.mark.slow
def test_n_choices_each_finish_once_and_seeds_reproduce(server: TritonServer) -> None:
    request = _request("n", max_tokens=8, temperature=1.0, seed=7, n=2)

    async def body(backend: TritonBackend) -> list[list[GenerationChunk]]:
        return [await _collect(backend, request) for _ in range(2)]

    first, second = _run(server, body)
    for chunks in (first, second):
        assert sorted(c.index for c in chunks if c.finish_reason) == [0, 1]
        assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens == 16

    def texts(chunks: list[GenerationChunk]) -> list[str]:
        return ["".join(c.text for c in chunks if c.index == i) for i in (0, 1)]

    assert texts(first) == texts(second)
    assert texts(first)[0] != texts(first)[1]  # choice i samples with seed + i


@pytest.mark.slow
def test_a_tiny_top_p_decodes_the_top_token(server: TritonServer) -> None:
    # float32 made 5e-324 a 0 that the model refused with a 400 the gateway had accepted
    greedy = _request("greedy", max_tokens=8, temperature=0.0, prompt=PROMPT)
    tiny = _request("tiny", max_tokens=8, temperature=1.0, top_p=5e-324, seed=1, prompt=PROMPT)

    async def body(backend: TritonBackend) -> list[str]:
        return ["".join(c.text for c in await _collect(backend, r)) for r in (greedy, tiny)]

    expected, sampled = _run(server, body)
    assert sampled == expected


@pytest.mark.slow
def test_stop_string_ends_the_output_before_it(server: TritonServer) -> None:
    full = _request("full", max_tokens=16, temperature=0.0)

    async def body(backend: TritonBackend) -> tuple[str, list[GenerationChunk]]:
        text = "".join(c.text for c in await _collect(backend, full))
        stop = text[len(text) // 2 : len(text) // 2 + 2]
        assert stop.strip(), "the greedy text has a usable middle"
        stopped = _request("stop", max_tokens=16, temperature=0.0, stop=(stop,))
        return text[: text.index(stop)], await _collect(backend, stopped)

    expected, chunks = _run(server, body)
    assert "".join(c.text for c in chunks) == expected
    assert chunks[-1].finish_reason == "stop"


@pytest.mark.slow
def test_client_errors_are_bad_requests(server: TritonServer) -> None:
    async def body(backend: TritonBackend) -> list[BadRequestError]:
        errors = []
        too_long = _request("long", max_tokens=4000, temperature=0.0)
        image = _request(
            "img",
            max_tokens=4,
            messages=[{"role": "user", "content": [{"type": "image_url", "image_url": {}}]}],
        )
        for request in (too_long, image):
            with pytest.raises(BadRequestError) as info:
                await _collect(backend, request)
            errors.append(info.value)
        assert backend.ready()  # a client error does not mark the server down
        return errors

    too_long, image = _run(server, body)
    assert "exceeds the model's context of 2048 tokens" in too_long.message
    assert image.param == "messages[0].content[0]"


@pytest.mark.slow
def test_closing_the_stream_stops_decoding_on_the_server(server: TritonServer) -> None:
    long = _request("long", max_tokens=1500, temperature=0.0, prompt=PROMPT)
    short = _request("short", max_tokens=1, temperature=0.0, prompt=PROMPT)

    async def body(backend: TritonBackend) -> tuple[float, float]:
        started = time.monotonic()
        await _collect(backend, long)
        full = time.monotonic() - started
        stream: AsyncIterator[GenerationChunk] = backend.generate(long)
        await stream.__anext__()
        await stream.aclose()  # type: ignore[attr-defined]
        started = time.monotonic()
        await _collect(backend, short)  # one model instance: waits if decoding went on
        return full, time.monotonic() - started

    full, after_cancel = _run(server, body)
    assert after_cancel < full / 3, (full, after_cancel)
