"""A torchao-quantised folder from ``compress make`` served by the transformers backend.

The folder loads through the same ``load_causal_lm`` as any model (safetensors with torchao's
JSON tensor metadata, no pickle); the backend's own decoding (KV cache, batching) must then
give what ``generate`` gives on the quantised model.
"""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from llm.compress.folder import compress_model
from llm.compress.methods import CompressionSpec
from llm.models.loading import load_causal_lm
from tests.serving.backends.transformers.conftest import StartBackend, collect
from tests.serving.backends.transformers.test_backend import (
    PROMPTS,
    chat_request,
    completion_request,
    reference,
)


@pytest.mark.parametrize("method", ["int8-dynamic", "int4-weight-only"])
def test_quantised_folder_serves_what_generate_gives(
    start_backend: StartBackend, text_model: Path, tmp_path: Path, method: str
) -> None:
    folder = compress_model(text_model, tmp_path / method, CompressionSpec(method=method)).out
    model, tokenizer = load_causal_lm(folder)
    backend = start_backend(folder)
    for request in (chat_request(max_tokens=12), completion_request(PROMPTS[1], max_tokens=12)):
        text, finish, tokens = reference(model.eval(), tokenizer, request)
        output = asyncio.run(collect(backend, request))
        assert output.text == text
        assert output.finish == {0: finish}
        assert output.usage.completion_tokens == tokens
