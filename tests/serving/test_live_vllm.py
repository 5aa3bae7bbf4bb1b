"""The gateway over the vllm backend, live: a real uvicorn server driven by the ``openai`` client.

One server per module (the engine starts in 15-40 s on 2 cores) serving the
tiny random Llama of the backend tests and its LoRA adapter; answers are
checked against the backend's own greedy output so the gateway adds nothing.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.real_components import reason

pytest.importorskip("vllm", reason=reason("vllm", "vLLM is not installed"))
openai = pytest.importorskip("openai", reason=reason("openai", "no openai client"))

from serving.app import create_app  # noqa: E402
from serving.auth import KeyRing  # noqa: E402
from serving.backends.base import BackendSettings  # noqa: E402
from serving.backends.vllm_backend import VLLMBackend  # noqa: E402
from serving.config import ServeConfig  # noqa: E402
from serving.server import BackgroundServer  # noqa: E402
from tests.serving.backends.test_vllm_backend import (  # noqa: E402
    ADAPTER,
    CHAT,
    PROMPT,
    build_adapter,
    build_model,
    engine_options,
    hf_greedy,
)
from tests.train.conftest import chat_tokenizer  # noqa: E402,F401

pytestmark = [pytest.mark.vllm, pytest.mark.slow]


class Gateway:
    """A started gateway: its URL, backend and audit log."""

    def __init__(self, server: BackgroundServer, backend: VLLMBackend, audit_log: Path) -> None:
        self.server = server
        self.backend = backend
        self.audit_log = audit_log
        self.client = openai.OpenAI(base_url=server.url + "/v1", api_key="unused", max_retries=0)


@pytest.fixture(scope="module")
def gateway(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: Any) -> Iterator[Gateway]:  # noqa: F811
    """The gateway on a free loopback port, vllm backend, serving ``tiny`` and ``tiny-dx``."""
    root = tmp_path_factory.mktemp("live-vllm")
    model = build_model(root / "tiny-random", chat_tokenizer)
    adapter = build_adapter(model, root / "adapter-dx")
    settings = BackendSettings("tiny", str(model), {ADAPTER: adapter}, engine_options(root))
    backend = VLLMBackend(settings)
    config = ServeConfig(
        backend="vllm",
        model_name="tiny",
        model_path=str(model),
        adapters={ADAPTER: adapter},
        backend_options=engine_options(root),
        audit_log=root / "audit.jsonl",
        audit_key_file=root / "audit-hmac.key",
        port=0,
    )
    server = BackgroundServer(create_app(backend, config, KeyRing([])), start_timeout_s=600)
    server.start()
    yield Gateway(server, backend, config.audit_log)
    server.stop()


def test_models_lists_base_and_adapter(gateway: Gateway) -> None:
    ids = [model.id for model in gateway.client.models.list().data]
    assert ids == ["tiny", ADAPTER]


def test_chat_and_completion_answer_greedy(gateway: Gateway) -> None:
    from transformers import AutoModelForCausalLM

    client, backend = gateway.client, gateway.backend
    chat = client.chat.completions.create(
        model="tiny",
        messages=CHAT,
        max_tokens=16,
        temperature=0,
    )
    tokenizer = backend.tokenizer
    prompt = tokenizer.apply_chat_template(CHAT, add_generation_prompt=True, tokenize=False)
    ids = tokenizer.encode(prompt, add_special_tokens=False)
    model = AutoModelForCausalLM.from_pretrained(str(backend.model_path), local_files_only=True)
    expected, expected_tokens = hf_greedy(model.eval(), tokenizer, ids, 16)
    assert chat.choices[0].message.content == expected
    assert chat.usage is not None
    assert (chat.usage.prompt_tokens, chat.usage.completion_tokens) == (len(ids), expected_tokens)

    completion = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=12, temperature=0
    )
    expected, _ = hf_greedy(model, tokenizer, tokenizer.encode(PROMPT), 12)
    assert completion.choices[0].text == expected
    assert completion.choices[0].finish_reason in ("stop", "length")


def test_stream_matches_non_streamed_answer(gateway: Gateway) -> None:
    client = gateway.client
    whole = client.completions.create(model="tiny", prompt=PROMPT, max_tokens=20, temperature=0)
    stream = client.completions.create(
        model="tiny", prompt=PROMPT, max_tokens=20, temperature=0, stream=True
    )
    pieces = []
    finishes = []
    for event in stream:
        for choice in event.choices:
            pieces.append(choice.text)
            if choice.finish_reason:
                finishes.append(choice.finish_reason)
    assert len(pieces) > 3  # tokens arrived as separate events
    assert "".join(pieces) == whole.choices[0].text
    assert finishes == [whole.choices[0].finish_reason]

    chat_stream = client.chat.completions.create(
        model="tiny",
        messages=CHAT,
        max_tokens=16,
        temperature=0,
        stream=True,
        stream_options={"include_usage": True},
    )
    deltas: list[str] = []
    usage = None
    for event in chat_stream:
        deltas.extend(c.delta.content or "" for c in event.choices)
        usage = event.usage or usage
    chat = client.chat.completions.create(
        model="tiny",
        messages=CHAT,
        max_tokens=16,
        temperature=0,
    )
    assert "".join(deltas) == chat.choices[0].message.content
    assert usage is not None and chat.usage is not None
    assert usage.completion_tokens == chat.usage.completion_tokens


def test_adapter_is_its_own_model(gateway: Gateway) -> None:
    client = gateway.client
    base = client.chat.completions.create(
        model="tiny",
        messages=CHAT,
        max_tokens=16,
        temperature=0,
    )
    tuned = client.chat.completions.create(
        model=ADAPTER,
        messages=CHAT,
        max_tokens=16,
        temperature=0,
    )
    assert tuned.model == ADAPTER
    assert tuned.choices[0].message.content != base.choices[0].message.content


def test_errors_keep_openai_shape(gateway: Gateway) -> None:
    client = gateway.client
    with pytest.raises(openai.NotFoundError):
        client.completions.create(model="no-such-model", prompt=PROMPT, max_tokens=4)
    with pytest.raises(openai.BadRequestError) as too_long:
        client.completions.create(model="tiny", prompt="cough " * 600, max_tokens=4)
    assert "cough" not in str(too_long.value)
    with pytest.raises(openai.BadRequestError):
        client.completions.create(model="tiny", prompt=PROMPT, max_tokens=4, n=2, temperature=0)
    # the engine still answers, with nothing left in flight
    assert client.completions.create(model="tiny", prompt=PROMPT, max_tokens=2).choices
    assert gateway.backend.engine.get_num_unfinished_requests() == 0
