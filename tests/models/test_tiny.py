"""Tiny Llama shapes, learning-rate schedule and the pretraining loop."""

from __future__ import annotations

import itertools
import math

import pytest
import torch
from transformers import PreTrainedTokenizerFast

from llm.models.chat_template import PAD_TOKEN
from llm.models.corpus import chunk_stream, document_stream, pack_blocks, read_note_corpus
from llm.models.tiny import (
    PretrainSettings,
    build_llama,
    count_parameters,
    llama_config,
    lr_factor,
    pretrain,
)
from llm.models.tokenizer import stop_token_ids, token_id


def test_tiny_config_is_a_standard_llama(tokenizer: PreTrainedTokenizerFast) -> None:
    config = llama_config("tiny", tokenizer)
    assert (config.hidden_size, config.num_hidden_layers) == (256, 4)
    assert (config.num_attention_heads, config.num_key_value_heads, config.head_dim) == (4, 2, 64)
    assert config.intermediate_size == 688
    assert config.max_position_embeddings == 2048
    assert config.tie_word_embeddings is False  # as Llama-3.1-8B: LoRA on lm_head merges cleanly
    assert config.vocab_size == len(tokenizer)
    assert config.eos_token_id == stop_token_ids(tokenizer)
    assert config.pad_token_id == token_id(tokenizer, PAD_TOKEN)
    small = llama_config("small", tokenizer)
    assert (small.hidden_size, small.num_hidden_layers, small.num_key_value_heads) == (512, 8, 4)
    assert small.head_dim == 64
    with pytest.raises(ValueError, match="unknown model size"):
        llama_config("huge", tokenizer)  # type: ignore[arg-type]


def test_parameter_count_matches_the_shapes(tokenizer: PreTrainedTokenizerFast) -> None:
    model = build_llama(llama_config("tiny", tokenizer), seed=0)
    v, h, i = len(tokenizer), 256, 688
    attention = h * 4 * 64 + 2 * h * 2 * 64 + 4 * 64 * h
    per_layer = attention + 3 * h * i + 2 * h
    assert count_parameters(model) == 2 * v * h + 4 * per_layer + h  # embeddings and lm_head
    assert model.generation_config.eos_token_id == stop_token_ids(tokenizer)


def test_lr_warms_up_then_decays_to_the_floor() -> None:
    factors = [lr_factor(s, steps=100, warmup_fraction=0.1, min_lr_ratio=0.1) for s in range(100)]
    assert factors[0] == pytest.approx(0.1)
    assert factors[9] == pytest.approx(1.0)
    assert all(a >= b for a, b in itertools.pairwise(factors[9:]))
    assert factors[-1] == pytest.approx(0.1, abs=1e-3)


@pytest.mark.parametrize("bf16", [False, True])
def test_pretraining_lowers_training_and_held_out_loss(
    note_records,
    tokenizer: PreTrainedTokenizerFast,  # type: ignore[no-untyped-def]
    bf16: bool,
) -> None:
    corpus = read_note_corpus(note_records)
    ids = sorted(corpus.documents)
    blocks = pack_blocks(document_stream(corpus, ids[1:], tokenizer), 32)
    held_out = chunk_stream(document_stream(corpus, ids[:1], tokenizer), 32)
    model = build_llama(llama_config("tiny", tokenizer), seed=0)
    steps_seen: list[int] = []
    result = pretrain(
        model,
        blocks,
        held_out,
        PretrainSettings(steps=12, batch_size=4, learning_rate=3e-3, threads=1, bf16=bf16),
        on_step=lambda step, loss: steps_seen.append(step),
    )
    assert steps_seen == list(range(1, 13))
    assert result.initial_loss == pytest.approx(math.log(len(tokenizer)), rel=0.1)
    assert result.final_loss < result.initial_loss - 1.0
    assert result.held_out_loss_after < result.held_out_loss_before
    assert result.held_out_perplexity_after == pytest.approx(math.exp(result.held_out_loss_after))
    summary = result.to_dict()
    assert summary["loss_curve"][0][0] == 1 and summary["loss_curve"][-1][0] == 12
    assert all(p.device.type == "cpu" for p in model.parameters())
    # autocast runs the matmuls in bf16; the weights (and what is saved) stay fp32
    assert all(p.dtype == torch.float32 for p in model.parameters())
    assert summary["precision"] == ("bf16" if bf16 else "fp32")


def test_pretraining_rejects_empty_input(tokenizer: PreTrainedTokenizerFast) -> None:
    model = build_llama(llama_config("tiny", tokenizer), seed=0)
    empty = torch.zeros((0, 8), dtype=torch.long)
    with pytest.raises(ValueError, match="at least one training block"):
        pretrain(model, empty, [torch.arange(4)], PretrainSettings(steps=1))
    with pytest.raises(ValueError, match="steps must be"):
        pretrain(model, torch.zeros((1, 8), dtype=torch.long), [], PretrainSettings(steps=0))
