"""sdpa_varlen: causal SDPA on each packed example apart, with the results of sdpa's mask."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoModelForCausalLM

from llm.train.attention import SDPA_VARLEN, varlen_sdpa_attention_forward
from llm.train.packing import PackedCollator
from tests.train.conftest import tiny_llama

LENGTHS = (7, 12, 3, 20, 9, 1)


def packed(vocab_size: int, width: int = 24) -> Any:
    """Six random examples packed into rows of ``width`` (several rows, padding tails)."""
    gen = torch.Generator().manual_seed(1)
    features = []
    for n in LENGTHS:
        ids = torch.randint(0, vocab_size, (n,), generator=gen).tolist()
        features.append({"input_ids": ids, "labels": ids})
    batch = PackedCollator(max_length=width, pad_token_id=0, flash_attn_kwargs=True).collate(
        features
    )
    assert len(batch.seq_lens) > 1 and any(len(lens) > 1 for lens in batch.seq_lens)
    assert batch.num_slots > batch.num_real_tokens  # at least one padding tail
    return batch


def without_varlen_kwargs(inputs: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in inputs.items() if not k.startswith(("cu_seq_lens", "max_length"))}


def test_logits_and_gradients_match_sdpa_with_its_block_diagonal_mask() -> None:
    model = tiny_llama(50, "sdpa")
    batch = packed(50)
    reference = model(**without_varlen_kwargs(batch.model_inputs()))
    reference.loss.backward()
    want = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()

    varlen = tiny_llama(50, SDPA_VARLEN)  # same seed, same weights
    inputs = batch.model_inputs()
    out = varlen(**inputs)
    out.loss.backward()
    # the bounds were read from the tensor once and kept on it for the other layers
    assert inputs["cu_seq_lens_q"]._varlen_bounds == batch.cu_seqlens.tolist()
    real = batch.labels != -100
    torch.testing.assert_close(out.logits[real], reference.logits[real], rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, reference.loss)
    for name, p in varlen.named_parameters():
        torch.testing.assert_close(p.grad, want[name], rtol=1e-4, atol=1e-6, msg=name)


def test_one_block_per_row_leaks_across_examples() -> None:
    # negative control: the bounds are what keeps examples apart
    model = tiny_llama(50, SDPA_VARLEN)
    batch = packed(50)
    inputs = batch.model_inputs()
    width = batch.input_ids.shape[1]
    rows = len(batch.seq_lens)
    leaky = dict(inputs, cu_seq_lens_q=torch.arange(0, rows * width + 1, width))
    with torch.no_grad():
        apart, mixed = model(**inputs).loss, model(**leaky).loss
    assert abs(float(apart) - float(mixed)) > 1e-3


def test_without_bounds_it_is_plain_causal_sdpa() -> None:
    ids = torch.randint(0, 50, (2, 11), generator=torch.Generator().manual_seed(2))
    with torch.no_grad():
        want = tiny_llama(50, "sdpa")(input_ids=ids).logits
        got = tiny_llama(50, SDPA_VARLEN)(input_ids=ids).logits
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-5)


def test_padded_batches_and_caches_are_refused() -> None:
    model = tiny_llama(50, SDPA_VARLEN)
    ids = torch.ones((2, 5), dtype=torch.long)
    mask = torch.tensor([[1, 1, 1, 1, 1], [1, 1, 1, 0, 0]])
    with pytest.raises(ValueError, match="padding mask without cu_seq_lens_q"):
        model(input_ids=ids, attention_mask=mask)
    model(input_ids=ids, attention_mask=torch.ones_like(mask))  # all ones: no padding, fine

    layer = model.model.layers[0].self_attn
    q = torch.zeros(1, 4, 1, 16)
    kv = torch.zeros(1, 2, 6, 16)
    with pytest.raises(ValueError, match="KV cache"):
        varlen_sdpa_attention_forward(layer, q, kv, kv, None)
    q = torch.zeros(1, 4, 6, 16)
    with pytest.raises(ValueError, match=r"covers tokens 0\.\.5"):
        varlen_sdpa_attention_forward(layer, q, kv, kv, None, cu_seq_lens_q=torch.tensor([0, 5]))


def test_saved_model_does_not_name_the_kernel(tmp_path: Path) -> None:
    # a checkpoint trained with sdpa_varlen loads anywhere (vLLM, export) with the default
    model = tiny_llama(50, SDPA_VARLEN)
    model.save_pretrained(tmp_path)
    assert SDPA_VARLEN not in (tmp_path / "config.json").read_text()
    assert "attn_implementation" not in json.loads((tmp_path / "config.json").read_text())
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, local_files_only=True)
    assert loaded.config._attn_implementation == "sdpa"
