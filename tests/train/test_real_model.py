"""Fine-tuning a real pretrained model: SmolLM2-135M-Instruct with LoRA, and in full under ZeRO-3.

The shipped recipes run as a user would (``python -m llm.train`` and
``accelerate launch``), on the imported model (:mod:`tests.real_model`) and the
session's small task datasets, for two steps of short rows. QLoRA on the same
model is in ``test_qlora.py``.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.real_model import smollm2  # noqa: F401  (fixture)
from tests.train.fixtures import (
    TrainingAssets,
    asset_overrides,
    check_launch,
    launch,
    logged_losses,
    read_manifest,
    training_assets,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.slow

LORA_RECIPE = "recipes/smollm2-135m-lora-cpu.yaml"
FULL_RECIPE = "recipes/smollm2-135m-full-zero3-cpu.yaml"


def _overrides(assets: TrainingAssets, base: Path, out: Path) -> list[str]:
    return [
        *asset_overrides(assets, out),
        f"model.base={base}",
        "training.max_steps=2",
        "data.max_train_examples=8",
        "data.eval_split=null",
        "tracking.backend=none",
    ]


def test_lora_on_smollm2_trains_exports_and_answers(
    training_assets: TrainingAssets,  # noqa: F811
    smollm2: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    from llm.export import export_run
    from llm.models.loading import load_causal_lm

    out, log = tmp_path / "run", tmp_path / "train.log"
    proc = launch(None, LORA_RECIPE, _overrides(training_assets, smollm2, out), log)
    check_launch(proc, log)
    manifest: Any = read_manifest(out)
    assert manifest["results"]["global_step"] == 2
    losses = logged_losses(out)
    assert sorted(losses) == [1, 2] and all(math.isfinite(v) for v in losses.values())
    adapter = load_file(str(out / "final" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert len(lora_b) == 30 * 7  # every linear layer of the 30 blocks
    assert all(v.abs().sum() > 0 for v in lora_b)  # B starts at zero: the optimizer stepped
    # the embedding is tied and frozen: nothing but LoRA matrices is saved
    assert all("lora_" in k for k in adapter)

    merged = tmp_path / "merged"
    export_run(out, merged, merge=True)
    model, tokenizer = load_causal_lm(merged)
    prompt = tokenizer.apply_chat_template(
        [{"role": "user", "content": "What is 2+2?"}],
        add_generation_prompt=True,
        return_tensors="pt",
        return_dict=True,
    )
    new = model.generate(**prompt, max_new_tokens=40, do_sample=False)[0]
    new = new[prompt["input_ids"].shape[1] :].tolist()
    assert new[-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")  # stops at its own token


def test_full_zero3_on_smollm2_two_processes(
    training_assets: TrainingAssets,  # noqa: F811
    smollm2: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out, log = tmp_path / "run", tmp_path / "train.log"
    overrides = [*_overrides(training_assets, smollm2, out), "training.learning_rate=1e-4"]
    proc = launch("recipes/accelerate/cpu-zero3.yaml", FULL_RECIPE, overrides, log)
    check_launch(proc, log)
    manifest: Any = read_manifest(out)
    assert manifest["world_size"] == 2 and manifest["deepspeed"].endswith("zero3.json")
    tuned = load_file(str(out / "final" / "model.safetensors"))
    base = load_file(str(smollm2 / "model.safetensors"))
    assert tuned.keys() == base.keys()
    assert all(tuned[k].shape == base[k].shape for k in base)  # gathered, not shards
    assert all(torch.isfinite(v).all() for v in tuned.values())
    changed = [k for k in base if not torch.equal(tuned[k].float(), base[k])]
    assert len(changed) > len(base) // 2, "most weights should have moved"
