"""A real pretrained model behind the live gateway: SmolLM2-135M-Instruct and a LoRA adapter.

The imported model (``clinical-llm model import smollm2``) is served by the
``transformers`` and the ``vllm`` (CPU) backends, the adapter under its own
model name, and driven by the official ``openai`` client. The checks are the
ones a user makes first: the models are listed, the base model answers a
question it knows, stops at its own end-of-turn token (``<|im_end|>``) without
printing it, and the adapter's name reaches the adapter.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import openai
import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from serving.backends.base import BackendSettings
from tests.real_components import import_or_skip
from tests.real_model import smollm2  # noqa: F401  (fixture)
from tests.serving.backends.conftest import make_adapter
from tests.serving.conftest import LiveGateway

pytestmark = pytest.mark.slow

BASE, ADAPTER = "smollm2", "smollm2-dx"
QUESTION: list[Any] = [{"role": "user", "content": "What is 2+2?"}]


@pytest.fixture(scope="module")
def adapter(smollm2: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    """A rank-8 LoRA adapter of SmolLM2 whose random lora_B changes its answers."""
    return make_adapter(smollm2, tmp_path_factory.mktemp("smollm2-adapter") / "dx", 3, rank=8)


def _client(url: str) -> openai.OpenAI:
    return openai.OpenAI(base_url=url + "/v1", api_key="none", max_retries=0, timeout=300)


def _greedy(model_dir: Path, max_new_tokens: int) -> str:
    tokenizer = AutoTokenizer.from_pretrained(str(model_dir), local_files_only=True)
    model = AutoModelForCausalLM.from_pretrained(str(model_dir), local_files_only=True).eval()
    inputs: Any = tokenizer.apply_chat_template(
        QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    with torch.no_grad():
        ids = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return str(tokenizer.decode(ids[0, inputs["input_ids"].shape[1] :], skip_special_tokens=True))


def _check_answers(api: openai.OpenAI) -> tuple[str, str]:
    assert [m.id for m in api.models.list().data] == [BASE, ADAPTER]
    base = api.chat.completions.create(model=BASE, messages=QUESTION, max_tokens=48, temperature=0)
    choice = base.choices[0]
    assert choice.finish_reason == "stop"  # it ended its turn by itself
    assert choice.message.content and "4" in choice.message.content
    assert "<|im_end|>" not in choice.message.content
    tuned = api.chat.completions.create(
        model=ADAPTER, messages=QUESTION, max_tokens=48, temperature=0
    )
    assert tuned.model == ADAPTER
    assert tuned.choices[0].message.content != choice.message.content
    return choice.message.content, str(tuned.choices[0].message.content)


def test_transformers_backend_serves_smollm2_and_its_adapter(
    live_gateway: LiveGateway,
    smollm2: Path,  # noqa: F811
    adapter: Path,
) -> None:
    settings = BackendSettings(BASE, str(smollm2), {ADAPTER: str(adapter)}, {})
    url = live_gateway("transformers", settings)
    answer, _ = _check_answers(_client(url))
    assert answer == _greedy(smollm2, 48)


@pytest.fixture
def vllm_gateway(
    smollm2: Path,  # noqa: F811
    adapter: Path,
    tmp_path: Path,
) -> Iterator[str]:
    import_or_skip("vllm", "vllm")
    from serving.app import create_app
    from serving.auth import KeyRing
    from serving.backends.vllm_backend import VLLMBackend
    from serving.config import ServeConfig
    from serving.server import BackgroundServer

    options = {"work_dir": str(tmp_path), "dtype": "bfloat16", "max_model_len": 1024}
    backend = VLLMBackend(BackendSettings(BASE, str(smollm2), {ADAPTER: str(adapter)}, options))
    config = ServeConfig(
        backend="vllm",
        model_name=BASE,
        model_path=str(smollm2),
        adapters={ADAPTER: str(adapter)},
        backend_options=options,
        audit_log=tmp_path / "audit.jsonl",
        audit_key_file=tmp_path / "audit-hmac.key",
        port=0,
    )
    server = BackgroundServer(create_app(backend, config, KeyRing([])), start_timeout_s=600)
    server.start()
    yield server.url
    server.stop()


@pytest.mark.vllm
def test_vllm_backend_serves_smollm2_and_its_adapter(vllm_gateway: str) -> None:
    _check_answers(_client(vllm_gateway))
