"""``--dry-run``: meta-device model, LoRA counts, DeepSpeed estimates, tokens per step."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm.errors import BadInputError
from llm.train.dry_run import (
    activation_estimate,
    dry_run,
    model_state_estimates,
    render_report,
    short_count,
)
from llm.train.recipe import Recipe, load_recipe

REPO = Path(__file__).resolve().parents[2]
LLAMA_8B = REPO / "recipes/model_configs/llama-3.1-8b-instruct/config.json"

# every module dry_run touches is heavy to import (torch, transformers, peft, deepspeed)
pytestmark = pytest.mark.slow


def repo_recipe(name: str, overrides: list[str] | None = None) -> Recipe:
    return load_recipe(REPO / "recipes" / name, overrides or [], base_dir=REPO)


def lora_closed_form(config: dict[str, Any], r: int, targets: list[str]) -> int:
    """r·(in + out) for every adapted projection of a Llama-shaped decoder, over all layers."""
    h, inter = config["hidden_size"], config["intermediate_size"]
    kv = config["num_key_value_heads"] * h // config["num_attention_heads"]
    shapes = {
        "q_proj": (h, h),
        "k_proj": (h, kv),
        "v_proj": (h, kv),
        "o_proj": (h, h),
        "gate_proj": (h, inter),
        "up_proj": (h, inter),
        "down_proj": (inter, h),
    }
    per_layer = sum(r * (shapes[t][0] + shapes[t][1]) for t in targets)
    return per_layer * config["num_hidden_layers"]


def test_llama_8b_lora_counts_match_the_closed_form() -> None:
    recipe = repo_recipe("llama-3.1-8b-lora-zero2.yaml")
    report = dry_run(recipe)
    config = json.loads(LLAMA_8B.read_text())
    lora = recipe.method.lora
    assert lora is not None and isinstance(lora.target_modules, list)
    expected = lora_closed_form(config, lora.r, lora.target_modules)
    assert report.base_params == 8_030_261_248  # Llama-3.1-8B
    assert report.trainable_params == expected == 41_943_040
    assert report.total_params == report.base_params + expected
    assert report.adapted_modules == 7 * 32
    assert report.largest_layer_params == 128_256 * 4096  # embed_tokens / lm_head
    assert (report.world_size, report.num_nodes, report.zero_stage) == (8, 1, 2)
    assert report.tokens_per_step == 4 * 4 * 8 * 4096
    assert report.precision == "bf16"


def test_model_states_are_deepspeeds_own_numbers() -> None:
    from deepspeed.runtime.zero.stage_1_and_2 import estimate_zero2_model_states_mem_needs

    report = dry_run(repo_recipe("llama-3.1-8b-lora-zero2.yaml"))
    every, this_run = report.model_states
    cpu, gpu = estimate_zero2_model_states_mem_needs(
        total_params=report.total_params, num_gpus_per_node=8, num_nodes=1, cpu_offload=False
    )
    assert (every.per_gpu_bytes, every.per_node_cpu_bytes) == (gpu, cpu)
    _, lora_gpu = estimate_zero2_model_states_mem_needs(
        total_params=report.trainable_params, num_gpus_per_node=8, cpu_offload=False
    )
    frozen = (report.total_params - report.trainable_params) * 2  # bf16, replicated
    assert this_run.per_gpu_bytes == lora_gpu + frozen


def test_llama_8b_full_zero3_uses_the_zero3_estimator() -> None:
    from deepspeed.runtime.zero.stage3 import estimate_zero3_model_states_mem_needs

    report = dry_run(repo_recipe("llama-3.1-8b-full-zero3.yaml"))
    assert report.trainable_params == report.total_params == 8_030_261_248
    assert len(report.model_states) == 1
    cpu, gpu, _ = estimate_zero3_model_states_mem_needs(
        total_params=report.total_params,
        largest_layer_params=report.largest_layer_params,
        num_gpus_per_node=8,
        num_nodes=1,
        cpu_offload=False,
        cpu_offload_params=False,
        zero_init=True,
    )
    assert report.model_states[0].per_gpu_bytes == gpu
    assert report.model_states[0].per_node_cpu_bytes == cpu


def test_offload_and_multinode_change_the_estimate() -> None:
    offload = dry_run(
        repo_recipe(
            "llama-3.1-8b-full-zero3.yaml",
            [
                "deepspeed=recipes/deepspeed/zero3-offload.json",
                "launch.accelerate_config=recipes/accelerate/gpu-8-zero3-offload.yaml",
            ],
        )
    )
    assert (offload.offload_optimizer, offload.offload_param) == (True, True)
    assert offload.model_states[0].per_gpu_bytes == 4 * offload.largest_layer_params
    multinode = dry_run(
        repo_recipe(
            "llama-3.1-8b-full-zero3.yaml",
            ["launch.accelerate_config=recipes/accelerate/multinode-zero3.yaml"],
        )
    )
    assert (multinode.world_size, multinode.num_nodes, multinode.gpus_per_node) == (16, 2, 8)
    assert multinode.tokens_per_step == 2 * 8 * 16 * 4096


@pytest.mark.parametrize(
    ("name", "base_params", "trainable"),
    [
        ("qwen2.5-7b-qlora.yaml", 7_615_616_512, 40_370_176),
        ("meditron-7b-lora.yaml", 6_738_554_880, 39_976_960),
        # LLaVA: adapters on the Vicuna-7B language model only, not on the CLIP tower
        ("llava-1.5-7b-vl-lora.yaml", 7_063_427_072, 39_976_960),
    ],
)
def test_other_real_recipes(name: str, base_params: int, trainable: int) -> None:
    report = dry_run(repo_recipe(name))
    assert report.base_params == base_params
    assert report.trainable_params == trainable
    assert report.adapted_modules == 7 * (28 if "qwen" in name else 32)


def test_qlora_sizes_frozen_weights_as_nf4() -> None:
    report = dry_run(repo_recipe("qwen2.5-7b-qlora.yaml"))
    assert report.zero_stage is None and report.world_size == 1
    _, this_run = report.model_states
    frozen = report.total_params - report.trainable_params
    assert this_run.per_gpu_bytes == 2 * report.trainable_params + 18 * report.trainable_params + (
        frozen // 2
    )
    assert any("bitsandbytes" in note for note in report.notes)


def _tiny_checkpoint(tmp_path: Path, **shape: int) -> Path:
    folder = tmp_path / "ckpt"
    folder.mkdir()
    config = {
        "model_type": "llama",
        "hidden_size": 64,
        "intermediate_size": 128,
        "num_hidden_layers": 2,
        "num_attention_heads": 4,
        "num_key_value_heads": 2,
        "vocab_size": 256,
        "torch_dtype": "float32",
        **shape,
    }
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def _tiny_recipe(tmp_path: Path, model: dict[str, Any], method: dict[str, Any]) -> Recipe:
    data = {
        "model": model,
        "data": {"dataset_dir": "d", "tasks": ["diagnosis"], "max_length": 128},
        "method": method,
        "training": {"output_dir": "runs/t", "max_steps": 1, "micro_batch_size": 2},
    }
    path = tmp_path / "r.yaml"
    path.write_text(yaml.safe_dump(data))
    return load_recipe(path, base_dir=tmp_path)


def test_dry_run_reads_the_checkpoints_own_config(tmp_path: Path) -> None:
    _tiny_checkpoint(tmp_path)
    recipe = _tiny_recipe(
        tmp_path,
        {"base": "ckpt"},
        {"kind": "lora", "lora": {"r": 4, "target_modules": ["q_proj", "v_proj"]}},
    )
    report = dry_run(recipe)
    assert report.model_config == tmp_path / "ckpt/config.json"
    assert report.precision == "fp32"  # dtype auto follows the checkpoint
    # q: 64->64, v: 64->32 (2 kv heads of 16)
    assert report.trainable_params == 2 * 4 * ((64 + 64) + (64 + 32))
    assert report.world_size == 1 and report.zero_stage is None
    assert report.tokens_per_step == 2 * 128


def test_dry_run_counts_the_parameters_training_trains(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    from llm.models.loading import read_config
    from llm.train.model_setup import apply_adapters, count_parameters

    _tiny_checkpoint(tmp_path)
    lora = {"r": 4, "target_modules": ["q_proj", "v_proj"], "modules_to_save": ["lm_head"]}
    recipe = _tiny_recipe(tmp_path, {"base": "ckpt"}, {"kind": "lora", "lora": lora})
    model = AutoModelForCausalLM.from_config(read_config(tmp_path / "ckpt"))
    trainable, total = count_parameters(apply_adapters(model, recipe))
    report = dry_run(recipe)
    assert (report.trainable_params, report.total_params) == (trainable, total)


def test_dry_run_notes_a_model_config_that_disagrees_with_the_checkpoint(tmp_path: Path) -> None:
    _tiny_checkpoint(tmp_path, vocab_size=300)
    other = tmp_path / "other.json"
    other.write_text((tmp_path / "ckpt/config.json").read_text().replace("300", "256"))
    recipe = _tiny_recipe(tmp_path, {"base": "ckpt", "config": "other.json"}, {"kind": "full"})
    report = dry_run(recipe)
    assert any("vocab_size 256 vs 300" in note for note in report.notes)


def test_lora_targets_that_match_nothing_are_bad_input(tmp_path: Path) -> None:
    _tiny_checkpoint(tmp_path)
    recipe = _tiny_recipe(
        tmp_path, {"base": "ckpt"}, {"kind": "lora", "lora": {"target_modules": ["qkv_proj"]}}
    )
    with pytest.raises(BadInputError, match=r"method\.lora\.target_modules"):
        dry_run(recipe)


def test_missing_checkpoint_config_says_to_set_model_config(tmp_path: Path) -> None:
    recipe = _tiny_recipe(tmp_path, {"base": "nowhere"}, {"kind": "full"})
    with pytest.raises(BadInputError, match=r"set model\.config"):
        dry_run(recipe)


def test_activation_estimate_formulas() -> None:
    config = {"hidden_size": 8, "num_hidden_layers": 2, "num_attention_heads": 2, "vocab_size": 10}
    full, formula = activation_estimate(
        config,
        micro_batch_size=1,
        max_length=4,
        gradient_checkpointing=False,
        attn_implementation="eager",
    )
    assert full == 2 * (34 * 4 * 8 + 5 * 2 * 16) + 8 * 4 * 10
    assert "5·a·s²·b" in formula
    ckpt, formula = activation_estimate(
        config, micro_batch_size=1, max_length=4, gradient_checkpointing=True,
        attn_implementation="sdpa",
    )  # fmt: skip
    assert ckpt == 2 * 2 * 4 * 8 + 34 * 4 * 8 + 8 * 4 * 10
    assert "checkpointing" in formula


def test_zero3_frozen_weights_are_partitioned() -> None:
    rows = model_state_estimates(
        total_params=1_000_000,
        trainable_params=1_000,
        largest_layer_params=100_000,
        stage=3,
        offload_optimizer=False,
        offload_param=False,
        gpus_per_node=4,
        num_nodes=1,
        frozen_bytes_per_param=2.0,
    )
    assert len(rows) == 2
    # DeepSpeed's ZeRO-3 figure for the 1,000 trainable + 999,000 bf16 weights / 4 GPUs
    assert rows[1].per_gpu_bytes == 4 * 1_000 + int(18 * 1_000 / 4) + 999_000 * 2 // 4


def test_report_renders_as_a_table() -> None:
    from rich.console import Console

    report = dry_run(repo_recipe("llama-3.1-8b-lora-zero2.yaml"))
    console = Console(width=200, record=True)
    console.print(render_report(report))
    text = console.export_text()
    assert "8,030,261,248" in text and "ROUGH estimate" in text and "524,288" in text
    assert json.dumps(report.to_dict())  # plain JSON types


@pytest.mark.parametrize("native", [True, False])
def test_cpu_recipe_with_dtype_auto_reports_the_precision_this_cpu_trains_in(
    monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    from llm import hardware

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native)
    recipe = repo_recipe("tiny-lora-cpu.yaml", ["model.base=null", f"model.config={LLAMA_8B}"])
    report = dry_run(recipe)
    assert report.precision == ("bf16" if native else "fp32")
    assert any("model.dtype auto on a CPU launch" in note for note in report.notes)


def test_short_count_scales_to_the_largest_unit() -> None:
    assert short_count(8_030_261_248) == "8.03 B"
    assert short_count(30_301_696) == "30.3 M"
    assert short_count(4_999_424) == "5 M"
    assert short_count(4_200) == "4.2 k"
    assert short_count(12) == "12"
