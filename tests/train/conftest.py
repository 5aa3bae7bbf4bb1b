"""Fixtures of the training tests: the chat tokenizer (from the model tests) and a tiny Llama."""

from __future__ import annotations

from typing import Any

import torch
from transformers import LlamaConfig, LlamaForCausalLM

from llm.train.attention import SDPA_VARLEN, register_varlen_sdpa
from tests.models.conftest import chat_tokenizer  # noqa: F401  (fixture, shared with these tests)


def tiny_llama(vocab_size: int, attn_implementation: str, *, use_cache: bool = False) -> Any:
    """A randomly initialised 2-layer Llama in float32 eval mode (fixed seed)."""
    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        intermediate_size=128,
        vocab_size=vocab_size,
        use_cache=use_cache,
    )
    model = LlamaForCausalLM(config)
    if attn_implementation == SDPA_VARLEN:
        register_varlen_sdpa()
    model.set_attn_implementation(attn_implementation)
    assert model.config._attn_implementation == attn_implementation
    return model.float().eval()
