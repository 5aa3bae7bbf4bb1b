"""``compress recover``: a pruned model fine-tuned briefly through a shipped recipe, zeros kept.

The end-to-end tests run the command as a user types it, on the session's tiny model and
task datasets (tests.train.fixtures), with a LoRA recipe and a full fine-tune recipe.
"""

from __future__ import annotations

import json
import subprocess
from pathlib import Path
from typing import Any

import pytest
from safetensors import safe_open

from llm.cli import main
from llm.compress.folder import compress_model
from llm.compress.methods import CompressionSpec, Method
from llm.compress.recover import pruning_of
from llm.errors import BadInputError
from tests.train.fixtures import (
    PYTHON,
    REPO,
    TrainingAssets,
    check_launch,
    launch,
    training_assets,  # noqa: F401  (fixture)
    training_env,
)

SMALL = [  # the tiny recipes, kept small as tests.train.fixtures.asset_overrides keeps them
    "data.max_length=256",
    "data.max_train_examples=16",
    "training.logging_steps=1",
    "training.micro_batch_size=2",
    "training.gradient_accumulation_steps=1",
    "training.early_stopping_patience=null",
    "training.eval_every_steps=null",
    "training.save_every_steps=null",
    "training.cpu_threads=1",
    "tracking.backend=tensorboard",
]


def _weights(folder: Path) -> dict[str, Any]:
    tensors: dict[str, Any] = {}
    for path in sorted(folder.glob("*.safetensors")):
        with safe_open(str(path), framework="pt") as f:
            names = [k for k in f.keys() if k.endswith("proj.weight")]  # noqa: SIM118
            tensors.update({k: f.get_tensor(k) for k in names})
    return tensors


@pytest.fixture(scope="module")
def pruned(training_assets: TrainingAssets, tmp_path_factory: pytest.TempPathFactory) -> Path:  # noqa: F811
    out = tmp_path_factory.mktemp("recover") / "pruned"
    spec = CompressionSpec(method=Method.prune_unstructured, sparsity=0.5)
    compress_model(training_assets.model, out, spec)
    return out


def _recover(
    pruned: Path, assets: TrainingAssets, recipe: str, out: Path
) -> subprocess.CompletedProcess[str]:
    argv = [str(PYTHON.parent / "clinical-llm"), "compress", "recover", str(pruned),
            "--recipe", recipe, "--datasets", str(assets.datasets), "--steps", "3",
            *[a for o in SMALL for a in ("--set", o)], "--out", str(out)]  # fmt: skip
    return subprocess.run(
        argv, cwd=REPO, env=training_env(), capture_output=True, text=True, timeout=600
    )


@pytest.mark.slow
@pytest.mark.parametrize(
    ("recipe", "method"),
    [("recipes/tiny-lora-cpu.yaml", "lora"), ("recipes/tiny-full-zero3-cpu.yaml", "full")],
)
def test_recovery_keeps_every_pruned_zero_and_changes_the_rest(
    pruned: Path,
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
    recipe: str,
    method: str,
) -> None:
    out = tmp_path / "recovered"
    proc = _recover(pruned, training_assets, recipe, out)
    assert proc.returncode == 0, proc.stderr[-3000:]

    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["kind"] == "model-compress"
    compression = manifest["compression"]
    assert compression["name"] == f"prune-unstructured-0.5-recovered-{method}"
    recovery = compression["recovery"]
    assert recovery["method"] == method and recovery["steps"] == 3 and recovery["keep_zeros"]
    assert recovery["run"] == str((tmp_path / "recovered.run").resolve())
    assert not (tmp_path / ".recovered.export").exists()  # the merge's scratch is gone

    # every pruned weight still zero, and the fine-tune changed the weights that were kept
    assert _check_zeros(pruned, out) > 0
    mask = recovery["mask"]
    if method == "full":  # masked gradients: nothing to set back, the whole change kept
        assert mask["moved"] == 0 and mask["delta_kept"] == 1.0
    else:  # the merged LoRA delta is dense: part of it is cut away again
        assert mask["moved"] > 0 and 0 < mask["delta_kept"] < 1
    # the folder is a model folder: tokenizer and chat template came along
    assert (out / "tokenizer.json").is_file() and (out / "chat_template.jinja").is_file()


def _check_zeros(pruned: Path, out: Path) -> int:
    """Assert every pruned weight of ``out`` is still zero; how many kept weights changed."""
    before, after = _weights(pruned), _weights(out)
    assert before.keys() == after.keys() and before
    changed = 0
    for name, weight in before.items():
        zeros = weight == 0
        assert bool((after[name][zeros] == 0).all()), name
        changed += int((after[name][~zeros] != weight[~zeros]).sum())
    return changed


@pytest.mark.slow
def test_a_zero2_run_launched_by_hand_keeps_the_zeros_and_is_recovered_with_run(
    pruned: Path,
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    # several processes: the user launches the recipe with accelerate, then hands the run over
    run, log = tmp_path / "run", tmp_path / "train.log"
    overrides = [
        f"model.base={pruned}",
        f"data.dataset_dir={training_assets.datasets}",
        f"training.output_dir={run}",
        "method.keep_zeros=true",
        "deepspeed=recipes/deepspeed/zero2.json",
        "launch.accelerate_config=recipes/accelerate/cpu-zero2.yaml",
        "training.max_steps=2",
        "training.num_epochs=null",
        "training.learning_rate=1e-3",  # large enough to move every weight it may move
        *SMALL,
    ]
    proc = launch("recipes/accelerate/cpu-zero2.yaml", "recipes/tiny-full-zero3-cpu.yaml",
                  overrides, log)  # fmt: skip
    check_launch(proc, log)
    assert "world size 2" in log.read_text() and "stay zero (gradients masked)" in log.read_text()
    out = tmp_path / "recovered"
    assert main(["compress", "recover", str(pruned), "--run", str(run), "--out", str(out)]) == 0
    recovery = json.loads((out / "manifest.json").read_text())["compression"]["recovery"]
    assert recovery["method"] == "full" and recovery["mask"]["moved"] == 0
    assert _check_zeros(pruned, out) > 0


def test_only_pruned_folders_are_recovered(training_assets: TrainingAssets) -> None:  # noqa: F811
    with pytest.raises(BadInputError, match="not a pruned model folder"):
        pruning_of(training_assets.model)


def test_recipe_or_run_not_both_and_a_run_of_another_model_is_refused(
    pruned: Path,
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = str(tmp_path / "o")
    both = ["compress", "recover", str(pruned), "--recipe", "r.yaml", "--run", "x", "--out", out]
    assert main(both) == 2
    assert "give either --recipe (train now) or --run" in capsys.readouterr().err
    run = tmp_path / "other-run"
    run.mkdir()
    (run / "manifest.json").write_text(
        json.dumps({"model": {"base": str(training_assets.model), "method": "lora"}})
    )
    assert main(["compress", "recover", str(pruned), "--run", str(run), "--out", out]) == 2
    assert "recover the folder the run started from" in capsys.readouterr().err
    assert not (tmp_path / "o").exists()
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "notes.txt").write_text("not a compress output")
    argv = ["compress", "recover", str(pruned), "--recipe", "recipes/tiny-lora-cpu.yaml"]
    assert main([*argv, "--out", str(taken)]) == 2  # refused before any training
    assert "not an earlier `compress` output" in capsys.readouterr().err
    assert not (tmp_path / "taken.run").exists()


def test_full_fine_tune_keeping_zeros_under_zero3_is_refused(pruned: Path) -> None:
    from llm.train.model_setup import _keep_zeros
    from llm.train.recipe import load_recipe

    recipe = load_recipe(
        REPO / "recipes/tiny-full-zero3-cpu.yaml",
        [f"model.base={pruned}", "method.keep_zeros=true"],
    )
    with pytest.raises(BadInputError, match="ZeRO-3 partitions the weights"):
        _keep_zeros(object(), recipe, deepspeed_stage=3)
