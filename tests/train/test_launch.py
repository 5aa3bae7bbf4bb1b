"""Real multi-process training: 2 CPU processes under DeepSpeed, launched as a user would.

``accelerate launch --config_file recipes/accelerate/cpu-zero{2,3}.yaml -m llm.train
recipes/<recipe>.yaml --set ...`` on the session's tiny model and datasets
(:mod:`tests.train.fixtures`); each run is a few steps at ``max_length`` 256.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from tests.train.fixtures import (
    RESUME_STEPS,
    TrainingAssets,
    asset_overrides,
    check_launch,
    launch,
    logged_losses,
    read_manifest,
    training_assets,  # noqa: F401  (fixture)
    zero2_lora_run,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.slow

ZERO3 = "recipes/accelerate/cpu-zero3.yaml"


def _lora_b(final: Path) -> dict[str, torch.Tensor]:
    weights = load_file(str(final / "adapter_model.safetensors"))
    return {k: v for k, v in weights.items() if "lora_B" in k}


def _check_trained_adapter(final: Path, r: int = 8) -> None:
    assert (final / "adapter_config.json").is_file()
    assert (final / "tokenizer.json").is_file() and (final / "chat_template.jinja").is_file()
    b = _lora_b(final)
    assert b, "no LoRA B matrices saved"
    # B starts at zero: every saved B being non-zero proves the optimizer stepped and the
    # (ZeRO-partitioned) weights were gathered into the file, not a zero-size shard
    assert all(v.ndim == 2 and v.shape[1] == r and v.abs().sum() > 0 for v in b.values())
    assert not list(final.glob("*.bin")) and not list(final.glob("*.pt"))


def _check_whole_modules_trained(final: Path, base_dir: Path) -> None:
    """The recipes train the embeddings and the output head in full (modules_to_save).

    Each saved matrix must be whole (under ZeRO-3 a partitioned one would be saved as
    an empty shard) and differ from the base's, so it trained and was gathered.
    """
    adapter = load_file(str(final / "adapter_model.safetensors"))
    base = load_file(str(base_dir / "model.safetensors"))
    for name in ("model.embed_tokens.weight", "lm_head.weight"):
        tuned = adapter[f"base_model.model.{name}"]
        assert tuned.shape == base[name].shape and not torch.equal(tuned, base[name]), name


def test_lora_zero2_two_processes(
    zero2_lora_run: Path,  # noqa: F811
    training_assets: TrainingAssets,  # noqa: F811
) -> None:
    out = zero2_lora_run
    manifest: Any = read_manifest(out)
    assert manifest["world_size"] == 2
    assert manifest["deepspeed"].endswith("recipes/deepspeed/zero2.json")
    assert manifest["results"]["global_step"] == RESUME_STEPS
    assert manifest["results"]["tokens_seen"] > 0
    assert math.isfinite(manifest["results"]["final_eval_loss"])
    _check_trained_adapter(out / "final", r=16)
    _check_whole_modules_trained(out / "final", training_assets.model)
    losses = logged_losses(out)
    assert sorted(losses) == list(range(1, RESUME_STEPS + 1))
    assert all(math.isfinite(v) for v in losses.values())
    assert (out / "checkpoint-2" / "global_step2").is_dir()  # DeepSpeed's own checkpoint
    assert list((out / "runs").rglob("events.out.tfevents.*"))
    assert (out / "mlruns").is_dir()


def test_lora_zero3_two_processes(
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    out, log = tmp_path / "run", tmp_path / "train.log"
    overrides = [
        *asset_overrides(training_assets, out),
        "training.max_steps=2",
        "data.max_train_examples=16",
        "tracking.backend=none",
    ]
    proc = launch(ZERO3, "recipes/tiny-lora-zero3-cpu.yaml", overrides, log)
    check_launch(proc, log)
    assert "world size 2" in log.read_text()
    manifest: Any = read_manifest(out)
    assert manifest["world_size"] == 2 and manifest["deepspeed"].endswith("zero3.json")
    _check_trained_adapter(out / "final")
    _check_whole_modules_trained(out / "final", training_assets.model)


def test_full_zero3_saves_a_consolidated_model(
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    from transformers import AutoModelForCausalLM

    out, log = tmp_path / "run", tmp_path / "train.log"
    overrides = [
        *asset_overrides(training_assets, out),
        "training.max_steps=2",
        "training.learning_rate=0.001",
        "data.max_train_examples=16",
        "tracking.backend=none",
    ]
    proc = launch(ZERO3, "recipes/tiny-full-zero3-cpu.yaml", overrides, log)
    check_launch(proc, log)
    assert "attention sdpa_varlen" in log.read_text()  # the recipe's packed-row kernel ran
    final = out / "final"
    assert (final / "model.safetensors").is_file() and not list(final.glob("global_step*"))
    kwargs: dict[str, Any] = {"local_files_only": True, "use_safetensors": True}
    tuned = AutoModelForCausalLM.from_pretrained(final, **kwargs).state_dict()
    base = AutoModelForCausalLM.from_pretrained(training_assets.model, **kwargs).state_dict()
    assert tuned.keys() == base.keys()
    assert all(tuned[k].shape == base[k].shape for k in base)  # gathered, not shards
    assert all(torch.isfinite(v).all() for v in tuned.values())
    changed = [k for k in base if not torch.equal(tuned[k], base[k])]
    assert len(changed) > len(base) // 2, "most weights should have moved"


def test_multimodal_lora_step_two_processes(
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    out, log = tmp_path / "run", tmp_path / "train.log"
    overrides = [
        *asset_overrides(training_assets, out, multimodal=True),
        "data.max_length=256",  # 64 image slots + the report text
        "training.max_steps=1",
        "data.max_train_examples=8",
        "tracking.backend=none",
    ]
    proc = launch("recipes/accelerate/cpu-zero2.yaml", "recipes/tiny-vl-cpu.yaml", overrides, log)
    check_launch(proc, log)
    losses = logged_losses(out)
    assert list(losses) == [1] and math.isfinite(losses[1]) and losses[1] > 0
    final = out / "final"
    weights = load_file(str(final / "adapter_model.safetensors"))
    # LoRA on the language model only, the projector trained in full (modules_to_save)
    assert any("multi_modal_projector" in k for k in weights)
    assert not any("vision_tower" in k for k in weights)
    assert (final / "processor_config.json").is_file()
    manifest: Any = read_manifest(out)
    assert manifest["model"]["multimodal"] and manifest["world_size"] == 2
