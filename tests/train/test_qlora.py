"""QLoRA on CPU: a 4-bit nf4 base from bitsandbytes' CPU backend, LoRA adapters on top.

The recipe checks accept qlora on a CPU launch config where bitsandbytes can
quantise on CPU, and name the ``qlora`` extra where it is missing. The slow tests
load the real SmolLM2-135M-Instruct in 4 bits and train it for a few steps
through the real ``llm.train`` entry point, then export the adapter.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
import math
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import load_file

from llm.export.exporter import export_run
from llm.hardware import cpu_auto_precision
from llm.train.recipe import Recipe, load_recipe
from llm.train.recipe_checks import RecipeError
from tests.real_model import smollm2  # noqa: F401  (fixture)
from tests.train.fixtures import (
    REPO,
    TrainingAssets,
    asset_overrides,
    check_launch,
    launch,
    logged_losses,
    read_manifest,
    training_assets,  # noqa: F401  (fixture)
)

RECIPE = "recipes/smollm2-135m-qlora-cpu.yaml"
# SmolLM2-135M: 30 layers x 7 linear layers, all quantised and adapted
LINEAR_LAYERS = 30 * 7
BASE_PARAMS = 134_515_008


def _cpu_launch(tmp_path: Path) -> Path:
    """A one-process accelerate config that trains on CPU."""
    config = tmp_path / "cpu-1.yaml"
    config.write_text("distributed_type: 'NO'\nnum_processes: 1\nuse_cpu: true\n")
    return config


def _recipe_on_cpu(tmp_path: Path) -> Recipe:
    return load_recipe(
        REPO / RECIPE, [f"launch.accelerate_config={_cpu_launch(tmp_path)}"], base_dir=REPO
    )


def _hide_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec

    def without_bitsandbytes(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "bitsandbytes" else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_bitsandbytes)


# ---------------------------------------------------------------- recipe checks


def test_cpu_launch_config_accepts_qlora(tmp_path: Path) -> None:
    recipe = _recipe_on_cpu(tmp_path)
    assert recipe.method.kind == "qlora"


def test_cpu_launch_without_bitsandbytes_names_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_bitsandbytes(monkeypatch)
    with pytest.raises(RecipeError) as info:
        _recipe_on_cpu(tmp_path)
    [problem] = [p for p in info.value.problems if p.path == "method.kind"]
    assert "pip install 'clinical-llm[qlora]'" in problem.message
    assert "runs on CPU" in problem.message


def test_cli_prints_the_extra_with_its_brackets(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from llm.cli.train import main

    _hide_bitsandbytes(monkeypatch)
    monkeypatch.chdir(REPO)
    code = main([RECIPE, "--set", f"launch.accelerate_config={_cpu_launch(tmp_path)}"])
    assert code == 2
    assert "pip install 'clinical-llm[qlora]'" in capsys.readouterr().err


def test_cpu_launch_with_bitsandbytes_before_its_cpu_backend_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    version = importlib.metadata.version
    monkeypatch.setattr(
        importlib.metadata,
        "version",
        lambda name: "0.45.5" if name == "bitsandbytes" else version(name),
    )
    with pytest.raises(RecipeError) as info:
        _recipe_on_cpu(tmp_path)
    [problem] = [p for p in info.value.problems if p.path == "method.kind"]
    assert "0.49 or later" in problem.message and "0.45.5 is installed" in problem.message


def test_qlora_with_zero3_is_still_refused_on_cpu() -> None:
    with pytest.raises(RecipeError) as info:
        load_recipe(
            REPO / RECIPE,
            [
                "deepspeed=recipes/deepspeed/zero3.json",
                "launch.accelerate_config=recipes/accelerate/cpu-zero3.yaml",
            ],
            base_dir=REPO,
        )
    assert "ZeRO-3 is not supported" in info.value.problems[0].message


# ---------------------------------------------------------------- the real model in 4 bits


@pytest.mark.slow
def test_smollm2_loads_in_nf4_and_trains_its_adapters(smollm2: Path, tmp_path: Path) -> None:  # noqa: F811
    import bitsandbytes as bnb
    from peft.tuners.lora import LoraLayer

    from llm.train.model_setup import TORCH_DTYPES, load_model, training_precision

    recipe = load_recipe(REPO / RECIPE, [f"model.base={smollm2}"], base_dir=REPO)
    precision = training_precision(recipe, {})
    assert precision == cpu_auto_precision()
    loaded = load_model(recipe, precision=precision)

    base = [m for m in loaded.model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(base) == LINEAR_LAYERS
    weights = [m.weight for m in base]
    assert all(isinstance(w, bnb.nn.Params4bit) for w in weights)
    assert {getattr(w, "quant_type", None) for w in weights} == {"nf4"}
    assert {w.dtype for w in weights} == {torch.uint8}  # two 4-bit values a byte
    # the 4-bit layers compute in the run's precision: bf16 where this CPU has it natively
    assert {m.compute_dtype for m in base} == {TORCH_DTYPES[precision]}
    assert sum(isinstance(m, LoraLayer) for m in loaded.model.modules()) == LINEAR_LAYERS
    # packed weights are counted as the values they hold, not as bytes
    assert loaded.total_params == BASE_PARAMS + loaded.trainable_params
    assert all(p.dtype == torch.float32 for p in loaded.model.parameters() if p.requires_grad)

    ids = loaded.tokenizer("Chest radiograph shows pneumonia.", return_tensors="pt").input_ids
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16"):
        loss = loaded.model(input_ids=ids, labels=ids).loss
    loss.backward()
    assert math.isfinite(loss.item())
    grads = [p.grad for p in loaded.model.parameters() if p.requires_grad]
    assert grads and all(g is not None for g in grads)
    assert all(p.grad is None for p in loaded.model.parameters() if not p.requires_grad)


@pytest.mark.slow
def test_qlora_run_on_cpu_saves_an_adapter_that_exports(
    smollm2: Path,  # noqa: F811
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    overrides = [
        *asset_overrides(training_assets, out),
        f"model.base={smollm2}",
        f"launch.accelerate_config={_cpu_launch(tmp_path)}",
        "data.max_train_examples=8",
        "data.eval_split=null",
        "training.save_every_steps=null",
        "training.max_steps=2",
        "tracking.backend=none",
    ]
    log = tmp_path / "train.log"
    check_launch(launch(None, RECIPE, overrides, log), log)

    manifest = read_manifest(out)
    model = manifest["model"]
    assert isinstance(model, dict) and model["method"] == "qlora"
    assert model["total_params"] == BASE_PARAMS + model["trainable_params"]
    losses = logged_losses(out)
    assert sorted(losses) == [1, 2] and all(math.isfinite(v) for v in losses.values())
    adapter = load_file(str(out / "final" / "adapter_model.safetensors"))
    lora_b = [v for k, v in adapter.items() if "lora_B" in k]
    assert len(lora_b) == LINEAR_LAYERS and all(v.abs().sum() > 0 for v in lora_b)

    exported = export_run(out, tmp_path / "adapter", name="smollm2-qlora")
    assert exported.format == "adapter"
    assert (
        load_file(str(tmp_path / "adapter" / "adapter_model.safetensors")).keys() == adapter.keys()
    )
    # merged into the full-precision base (the 4-bit one cannot hold the update)
    merged = export_run(out, tmp_path / "merged", merge=True, name="smollm2-qlora")
    assert merged.format == "merged"
    q_proj = "model.layers.0.self_attn.q_proj.weight"
    base_q = load_file(str(smollm2 / "model.safetensors"))[q_proj]
    merged_q = load_file(str(tmp_path / "merged" / "model.safetensors"))[q_proj]
    assert merged_q.shape == base_q.shape and not torch.equal(merged_q.float(), base_q.float())
