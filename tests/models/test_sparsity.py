"""Zero weights kept through training (masked gradients) and set back after a merge."""

from __future__ import annotations

import pytest
import torch

from llm.models.sparsity import apply_zero_masks, keep_zeros_in_training, zero_count, zero_masks


def _pruned_net(seed: int = 0) -> torch.nn.Sequential:
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.ReLU(), torch.nn.Linear(16, 4))
    with torch.no_grad():
        _first(net).weight[:, ::2] = 0.0  # half of the first layer pruned; the last layer dense
    return net


def _first(net: torch.nn.Sequential) -> torch.nn.Linear:
    layer = net[0]
    assert isinstance(layer, torch.nn.Linear)
    return layer


def test_masks_cover_the_layers_with_zeros_only() -> None:
    masks = zero_masks(_pruned_net())
    assert list(masks) == ["0"]
    assert zero_count(masks) == 16 * 4


def test_masked_gradients_keep_zeros_through_adamw_with_weight_decay() -> None:
    net = _pruned_net()
    masks = keep_zeros_in_training(net)
    before = _first(net).weight.detach().clone()
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1, weight_decay=0.1)
    for _ in range(5):
        optimizer.zero_grad()
        net(torch.randn(32, 8)).pow(2).mean().backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        optimizer.step()
    weight = _first(net).weight.detach()
    assert bool((weight[~masks["0"]] == 0).all())  # every pruned weight still exactly zero
    assert not torch.equal(weight[masks["0"]], before[masks["0"]])  # the rest trained


def test_without_the_mask_training_moves_the_zeros() -> None:
    # the control of the test above: the same training, no hook, and the zeros are gone
    net = _pruned_net()
    masks = zero_masks(net)
    optimizer = torch.optim.AdamW(net.parameters(), lr=0.1)
    optimizer.zero_grad()
    net(torch.randn(32, 8)).pow(2).mean().backward()
    optimizer.step()
    assert int((_first(net).weight.detach()[~masks["0"]] != 0).sum()) > 0


def test_apply_masks_sets_the_zeros_back_and_measures_the_change_kept() -> None:
    pruned = _pruned_net()
    masks = zero_masks(pruned)
    base = {"0": _first(pruned).weight.detach().clone()}
    tuned = _pruned_net()
    with torch.no_grad():
        _first(tuned).weight += 1.0  # a dense delta: every weight moved by 1
    result = apply_zero_masks(tuned, masks, base)
    assert bool((_first(tuned).weight[~masks["0"]] == 0).all())
    assert result.layers == 1 and result.zeros == 64 and result.moved == 64
    assert result.delta_kept == pytest.approx(0.5**0.5)  # half of a uniform delta survives


def test_apply_masks_to_a_model_of_another_shape_is_an_error() -> None:
    masks = zero_masks(_pruned_net())
    other = torch.nn.Sequential(torch.nn.Linear(8, 32))
    with pytest.raises(ValueError, match="no weight of shape"):
        apply_zero_masks(other, masks, {"0": torch.zeros(16, 8)})
