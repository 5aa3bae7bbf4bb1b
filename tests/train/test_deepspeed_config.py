"""DeepSpeed "auto" values filled from a recipe by the HF Trainer's rules."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm.errors import BadInputError
from llm.train.deepspeed_config import resolve_deepspeed_config
from llm.train.recipe import load_recipe
from tests.train.test_distributed import _auto_keys

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture
def tiny_recipe(monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(REPO)
    return load_recipe(
        REPO / "recipes/tiny-lora-zero3-cpu.yaml",
        ["training.micro_batch_size=3", "training.gradient_accumulation_steps=5"],
    )


def test_resolve_deepspeed_config_fills_every_auto(tiny_recipe: Any) -> None:
    config = resolve_deepspeed_config(
        REPO / "recipes/deepspeed/zero3.json",
        tiny_recipe,
        world_size=2,
        precision="bf16",
        hidden_size=256,
    )
    assert _auto_keys(config) == set()
    assert config["train_micro_batch_size_per_gpu"] == 3
    assert config["gradient_accumulation_steps"] == 5
    assert config["train_batch_size"] == 3 * 5 * 2
    assert config["gradient_clipping"] == tiny_recipe.training.max_grad_norm
    assert config["bf16"]["enabled"] is True and config["fp16"]["enabled"] is False
    zero = config["zero_optimization"]
    assert zero["reduce_bucket_size"] == 256 * 256
    assert zero["stage3_prefetch_bucket_size"] == int(0.9 * 256 * 256)
    assert zero["stage3_param_persistence_threshold"] == 2560


def test_resolve_deepspeed_config_names_what_it_cannot_fill(tiny_recipe: Any) -> None:
    with pytest.raises(BadInputError, match=r"reduce_bucket_size.*hidden_size"):
        resolve_deepspeed_config(
            REPO / "recipes/deepspeed/zero3.json", tiny_recipe, world_size=2, precision="fp32"
        )
