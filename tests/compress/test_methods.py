"""Compression specs and pruning, on a loaded tiny model."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from pydantic import ValidationError

from llm.compress.methods import CompressionSpec, decoder_linears, prune
from llm.errors import BadInputError
from llm.models.loading import load_causal_lm


def test_sparsity_belongs_to_unstructured_pruning_only() -> None:
    with pytest.raises(ValidationError, match="needs a sparsity"):
        CompressionSpec(method="prune-unstructured")
    with pytest.raises(ValidationError, match="prune-unstructured only"):
        CompressionSpec(method="prune-2:4", sparsity=0.5)
    with pytest.raises(ValidationError):
        CompressionSpec(method="prune-unstructured", sparsity=1.0)
    spec = CompressionSpec(method="prune-unstructured", sparsity=0.3)
    assert spec.name == "prune-unstructured-0.3"


def test_unstructured_pruning_zeroes_the_smallest_weights_of_each_layer(
    source_model: Path,
) -> None:
    model, _ = load_causal_lm(source_model)
    before = {name: m.weight.detach().clone() for name, m in decoder_linears(model)}
    head = model.lm_head.weight.detach().clone()
    spec = CompressionSpec(method="prune-unstructured", sparsity=0.4)
    done = prune(model, spec)
    assert done["layers"] == len(before) == 14  # 7 linears x 2 layers
    assert done["zero_share"] == pytest.approx(0.4, abs=1e-3)
    for name, module in decoder_linears(model):
        weight, original = module.weight.detach(), before[name]
        zeroed = weight == 0
        # the kept weights are unchanged, and none is smaller than a pruned one
        assert torch.equal(weight[~zeroed], original[~zeroed])
        assert original[zeroed].abs().max() <= original[~zeroed].abs().min()
        assert "weight_orig" not in dict(module.named_parameters())  # made permanent
    assert torch.equal(model.lm_head.weight, head)


def test_2_4_pruning_leaves_two_of_every_four_weights(source_model: Path) -> None:
    model, _ = load_causal_lm(source_model)
    before = {name: m.weight.detach().clone() for name, m in decoder_linears(model)}
    done = prune(model, CompressionSpec(method="prune-2:4"))
    assert done["zero_share"] == pytest.approx(0.5)
    for name, module in decoder_linears(model):
        blocks = module.weight.detach().reshape(module.out_features, -1, 4)
        assert ((blocks == 0).sum(dim=-1) == 2).all()
        # the two kept are the two largest in magnitude of their block
        original = before[name].reshape(module.out_features, -1, 4).abs()
        kept = (blocks != 0).float()
        assert ((original * kept).sum(-1) >= original.topk(2, dim=-1).values.sum(-1) - 1e-6).all()


def test_quantisation_specs_do_not_prune(source_model: Path) -> None:
    model, _ = load_causal_lm(source_model)
    with pytest.raises(BadInputError, match="does not prune"):
        prune(model, CompressionSpec(method="int8-dynamic"))
