"""The training path: arguments from the recipe, data mix, token counting, resume rules,
tracking, choice accuracy; and one real single-process run with TensorBoard + MLflow."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import datasets
import pytest
import torch

from llm import hardware
from llm.errors import BadInputError
from llm.train import model_setup
from llm.train.callbacks import (
    NUM_REAL_TOKENS,
    STOP_AFTER_STEP_ENV,
    TokenCountingCollator,
    stop_after_step,
)
from llm.train.datasets import build_split, dataset_provenance
from llm.train.model_setup import LoadedModel, training_precision
from llm.train.packing import PackedCollator, PaddedCollator
from llm.train.recipe import Recipe, load_recipe
from llm.train.tracking import configure_environment, flatten, report_to, tensorboard_dir
from llm.train.trainer import (
    _collator,
    _set_cpu_threads,
    build_training_arguments,
)
from tests.train.conftest import tiny_llama
from tests.train.fixtures import (
    TrainingAssets,
    asset_overrides,
    check_launch,
    launch,
    logged_losses,
    read_manifest,
    training_assets,  # noqa: F401  (fixture)
)

REPO = Path(__file__).resolve().parents[2]
SYSTEM = "You are a clinical assistant. Answer with exactly one of: yes, no."


# ---------------------------------------------------------------- a small task folder


def _rows(n: int, task: str, note_words: int = 12) -> list[dict[str, Any]]:
    rows = []
    for i in range(n):
        answer = "yes" if i % 3 == 0 else "no"
        note = " ".join(["cough and fever for three days."] * (1 + i % note_words))
        rows.append(
            {
                "id": f"{task}:P{i:03d}",
                "messages": [
                    {"role": "system", "content": SYSTEM},
                    {"role": "user", "content": note},
                    {"role": "assistant", "content": answer},
                ],
                "answer": answer,
                "demographics": {"sex": "female" if i % 2 else "male"},
            }
        )
    return rows


def _write_tasks(root: Path, tasks: dict[str, int]) -> Path:
    manifest: dict[str, Any] = {"kind": "clinical-llm task datasets", "tasks": {}}
    for task, n in tasks.items():
        splits = {
            "train": datasets.Dataset.from_list(_rows(n, task)),
            "validation": datasets.Dataset.from_list(_rows(4, task)),
        }
        datasets.DatasetDict(splits).save_to_disk(str(root / task))
        manifest["tasks"][task] = {
            "content_sha256": f"hash-{task}",
            "counts": {"train": n, "validation": 4},
            "answers": ["no", "yes"],
        }
    manifest["records"] = {"sha256": "records-hash"}
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


def _recipe(tmp_path: Path, *overrides: str, text: str | None = None) -> Recipe:
    base = text or (
        "model: {base: model}\n"
        "data: {dataset_dir: data, tasks: [diagnosis, readmission], max_length: 64}\n"
        "method: {kind: lora, lora: {r: 4, alpha: 8}}\n"
        "training: {output_dir: run, max_steps: 7, micro_batch_size: 2}\n"
    )
    path = tmp_path / "recipe.yaml"
    path.write_text(base)
    return load_recipe(path, list(overrides), base_dir=tmp_path)


# ---------------------------------------------------------------- CPU threads


def test_cpu_threads_set_torch_threads_on_cpu_and_null_shares_the_cores_out(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")  # a CPU run even where CUDA exists
    # vLLM's in-process CPU worker (eval runner tests in the same xdist worker) replaces
    # torch.set_num_threads with a warning no-op; put torch's own function back.
    monkeypatch.setattr(torch, "set_num_threads", torch._C.set_num_threads)
    before = torch.get_num_threads()
    try:
        monkeypatch.setattr(os, "cpu_count", lambda: 4)
        monkeypatch.setenv("LOCAL_WORLD_SIZE", "2")  # two processes on this machine
        _set_cpu_threads(_recipe(tmp_path))
        assert torch.get_num_threads() == 2
        monkeypatch.delenv("LOCAL_WORLD_SIZE")  # a plain one-process run
        _set_cpu_threads(_recipe(tmp_path))
        assert torch.get_num_threads() == 4
        _set_cpu_threads(_recipe(tmp_path, "training.cpu_threads=1"))
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)
    with pytest.raises(BadInputError, match="cpu_threads"):
        _recipe(tmp_path, "training.cpu_threads=0")


# ---------------------------------------------------------------- TrainingArguments


def test_training_arguments_follow_the_recipe(tmp_path: Path) -> None:
    recipe = _recipe(
        tmp_path,
        "training.learning_rate=0.003",
        "training.lr_scheduler=linear",
        "training.warmup_ratio=0.1",
        "training.gradient_accumulation_steps=3",
        "training.eval_every_steps=2",
        "training.save_every_steps=4",
        "training.save_total_limit=1",
        "training.early_stopping_patience=2",
        "training.logging_steps=3",
        "training.seed=7",
        "tracking.backend=[tensorboard,mlflow]",
    )
    args = build_training_arguments(recipe, precision="fp32", deepspeed=None, has_eval=True)
    assert args.output_dir == str(tmp_path / "run")
    assert (args.max_steps, args.learning_rate, args.lr_scheduler_type.value) == (
        7,
        0.003,
        "linear",
    )
    assert args.warmup_steps == 0.1 and args.get_warmup_steps(7) == 1
    assert (args.per_device_train_batch_size, args.gradient_accumulation_steps) == (2, 3)
    assert (args.eval_strategy.value, args.eval_steps) == ("steps", 2)
    assert (args.save_strategy.value, args.save_steps, args.save_total_limit) == ("steps", 4, 1)
    assert args.load_best_model_at_end and args.metric_for_best_model == "eval_loss"
    assert args.greater_is_better is False
    assert (args.logging_steps, args.seed, args.data_seed) == (3, 7, 7)
    assert args.report_to == ["tensorboard", "mlflow"]
    assert args.run_name == "run"
    assert not args.bf16 and not args.fp16 and args.deepspeed is None
    assert args.remove_unused_columns is False and args.prediction_loss_only


def test_no_cadence_means_no_periodic_eval_or_save(tmp_path: Path) -> None:
    recipe = _recipe(tmp_path, "tracking.backend=none")
    args = build_training_arguments(recipe, precision="bf16", deepspeed=None, has_eval=True)
    assert args.eval_strategy.value == "no" and args.save_strategy.value == "no"
    assert args.bf16 and not args.load_best_model_at_end
    assert args.report_to == [] or args.report_to == ["none"]


@pytest.mark.parametrize("native_bf16", [True, False])
def test_precision_auto_on_cpu_follows_the_hardware_and_explicit_values_are_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native_bf16: bool
) -> None:
    monkeypatch.setenv("ACCELERATE_USE_CPU", "true")
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: native_bf16)
    auto = _recipe(tmp_path)
    expected = "bf16" if native_bf16 else "fp32"
    assert training_precision(auto, {"torch_dtype": "bfloat16"}) == expected
    assert training_precision(auto, {"torch_dtype": "float32"}) == expected
    assert training_precision(auto, {}) == expected
    bf16 = _recipe(tmp_path, "model.dtype=bf16")
    assert training_precision(bf16, {"torch_dtype": "float32"}) == "bf16"
    fp32 = _recipe(tmp_path, "model.dtype=fp32")
    assert training_precision(fp32, {"torch_dtype": "bfloat16"}) == "fp32"
    fp16 = _recipe(tmp_path, "model.dtype=fp16")
    with pytest.raises(BadInputError, match="fp16 needs a CUDA GPU"):
        training_precision(fp16, {})


def test_cast_trainable_puts_adapters_and_saved_modules_in_one_dtype_over_a_bf16_base() -> None:
    from peft import LoraConfig, get_peft_model

    base = tiny_llama(64, "sdpa").to(torch.bfloat16)
    config = LoraConfig(r=4, target_modules=["q_proj"], modules_to_save=["lm_head"])
    model = get_peft_model(base, config)
    head = [p for n, p in model.named_parameters() if "modules_to_save" in n]
    lora = [p for n, p in model.named_parameters() if "lora_" in n]
    assert head and all(p.dtype == torch.bfloat16 for p in head)  # peft leaves them 16-bit
    assert lora and all(p.dtype == torch.float32 for p in lora)  # and makes these fp32

    assert model_setup.cast_trainable(model, torch.float32) == sum(p.numel() for p in head)
    trainable = [p for p in model.parameters() if p.requires_grad]
    assert all(p.dtype == torch.float32 for p in trainable)
    frozen = [p for p in model.parameters() if not p.requires_grad]
    assert frozen and all(p.dtype == torch.bfloat16 for p in frozen)

    # under DeepSpeed: one 16-bit dtype (ZeRO-3 asserts it), the engine keeps fp32 masters
    assert model_setup.cast_trainable(model, torch.bfloat16) == sum(p.numel() for p in trainable)
    assert all(p.dtype == torch.bfloat16 for p in model.parameters())


# ---------------------------------------------------------------- interruption switch
# (resume rules: tests/train/test_checkpoints.py)


@pytest.mark.parametrize("raw", ["0", "-2", "three"])
def test_stop_after_step_must_be_a_positive_step(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(STOP_AFTER_STEP_ENV, raw)
    with pytest.raises(BadInputError, match=STOP_AFTER_STEP_ENV):
        stop_after_step()
    monkeypatch.setenv(STOP_AFTER_STEP_ENV, "5")
    assert stop_after_step() == 5
    monkeypatch.delenv(STOP_AFTER_STEP_ENV)
    assert stop_after_step() is None


# ---------------------------------------------------------------- real-token counting


def _features(lengths: list[int], pad: int) -> list[dict[str, Any]]:
    # token ids equal to the pad id inside real text: counting ids != pad would miss them
    return [{"input_ids": [pad] * n, "labels": [pad] * n} for n in lengths]


@pytest.mark.parametrize("packed", [True, False], ids=["packed", "padded"])
def test_batches_carry_their_real_token_count(packed: bool) -> None:
    pad = 7
    inner: Any = (
        PackedCollator(max_length=16, pad_token_id=pad)
        if packed
        else PaddedCollator(pad_token_id=pad)
    )
    batch = TokenCountingCollator(inner)(_features([5, 9, 3], pad))
    assert int(batch[NUM_REAL_TOKENS]) == 17
    assert batch["input_ids"].numel() > 17  # there is padding, and it is not counted


@pytest.mark.parametrize("attn", ["sdpa", "sdpa_varlen"])
def test_packing_collator_sends_bounds_to_sdpa_varlen(
    tmp_path: Path, chat_tokenizer: Any, attn: str, caplog: pytest.LogCaptureFixture
) -> None:
    recipe = _recipe(tmp_path, "data.packing=true", f"model.attn_implementation={attn}")
    model = tiny_llama(len(chat_tokenizer), attn)
    loaded = LoadedModel(model, chat_tokenizer, None, 1, "fp32", 0, 0)
    with caplog.at_level("INFO", logger="llm.train.trainer"):
        collator = _collator(recipe, loaded)
    batch = collator(_features([5, 9, 3], chat_tokenizer.pad_token_id))
    assert ("cu_seq_lens_q" in batch) == (attn == "sdpa_varlen")
    assert ("sdpa_varlen runs each example apart" in caplog.text) == (attn == "sdpa")


# ---------------------------------------------------------------- data mix


def test_tasks_are_mixed_shuffled_by_seed_and_limited(tmp_path: Path, chat_tokenizer: Any) -> None:
    _write_tasks(tmp_path / "data", {"diagnosis": 10, "readmission": 6})
    recipe = _recipe(tmp_path, "data.max_length=128")
    first = build_split(recipe, "train", chat_tokenizer)
    again = build_split(recipe, "train", chat_tokenizer)
    other = build_split(
        _recipe(tmp_path, "data.max_length=128", "training.seed=1"), "train", chat_tokenizer
    )
    assert first.examples == 16 and first.stats["diagnosis"].read == 10
    assert first.dataset["input_ids"] == again.dataset["input_ids"]
    assert first.dataset["input_ids"] != other.dataset["input_ids"]
    assert first.tokens == sum(len(ids) for ids in first.dataset["input_ids"])
    limited = build_split(recipe, "train", chat_tokenizer, limit=5)
    assert limited.examples == 5 and limited.dataset["input_ids"] == first.dataset["input_ids"][:5]


def test_packing_keeps_every_example_and_marks_their_lengths(
    tmp_path: Path, chat_tokenizer: Any
) -> None:
    _write_tasks(tmp_path / "data", {"diagnosis": 10, "readmission": 6})
    plain = build_split(_recipe(tmp_path, "data.max_length=128"), "train", chat_tokenizer)
    packed = build_split(
        _recipe(tmp_path, "data.max_length=128", "data.packing=true"), "train", chat_tokenizer
    )
    assert len(packed.dataset) < packed.examples == 16
    assert sum(map(sum, packed.dataset["seq_lens"])) == plain.tokens == packed.tokens
    assert all(sum(lens) <= 128 for lens in packed.dataset["seq_lens"])


def test_a_task_that_loses_every_example_is_an_error(tmp_path: Path, chat_tokenizer: Any) -> None:
    _write_tasks(tmp_path / "data", {"diagnosis": 4, "readmission": 4})
    recipe = _recipe(tmp_path, "data.max_length=16")
    with pytest.raises(
        BadInputError, match=r"diagnosis: every train example was rejected.*max_length"
    ):
        build_split(recipe, "train", chat_tokenizer)


def test_an_empty_split_is_an_error_that_says_what_to_change(
    tmp_path: Path, chat_tokenizer: Any
) -> None:
    # `data build --split 0.8,0,0.2` saves an empty validation split; tokenizing it
    # used to end in a datasets traceback about missing columns.
    root = _write_tasks(tmp_path / "data", {"diagnosis": 4})
    empty = datasets.Dataset.from_list(_rows(4, "diagnosis")).select([])
    datasets.DatasetDict({"train": empty, "validation": empty}).save_to_disk(
        str(root / "readmission"), num_shards={"train": 1, "validation": 1}
    )
    recipe = _recipe(tmp_path, "data.max_length=128")
    with pytest.raises(
        BadInputError, match=r"readmission: the validation split is empty.*eval_split"
    ):
        build_split(recipe, "validation", chat_tokenizer)
    with pytest.raises(BadInputError, match=r"readmission: the train split is empty.*train share"):
        build_split(recipe, "train", chat_tokenizer)


def test_missing_split_and_task_name_the_folder(tmp_path: Path, chat_tokenizer: Any) -> None:
    _write_tasks(tmp_path / "data", {"diagnosis": 4})
    recipe = _recipe(tmp_path, "data.max_length=128")
    with pytest.raises(BadInputError, match=r"data/readmission: no task dataset"):
        build_split(recipe, "train", chat_tokenizer)
    with pytest.raises(BadInputError, match=r"no split 'test'"):
        build_split(_recipe(tmp_path, "data.tasks=[diagnosis]"), "test", chat_tokenizer)


def test_provenance_records_hashes_and_counts(tmp_path: Path) -> None:
    root = _write_tasks(tmp_path / "data", {"diagnosis": 4})
    found = dataset_provenance(root, ["diagnosis"])
    assert found["tasks"]["diagnosis"]["content_sha256"] == "hash-diagnosis"
    assert found["tasks"]["diagnosis"]["counts"] == {"train": 4, "validation": 4}
    assert found["records_sha256"] == "records-hash" and len(found["manifest_sha256"]) == 64
    with pytest.raises(BadInputError, match=r"tasks.readmission: not built"):
        dataset_provenance(root, ["readmission"])
    with pytest.raises(BadInputError, match="clinical-llm data build"):
        dataset_provenance(tmp_path / "nowhere", ["diagnosis"])


# ---------------------------------------------------------------- tracking


def test_tracking_environment_points_into_the_run_folder(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key in ("TENSORBOARD_LOGGING_DIR", "MLFLOW_TRACKING_URI", "MLFLOW_EXPERIMENT_NAME"):
        monkeypatch.delenv(key, raising=False)
    monkeypatch.setenv("MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING", "true")
    recipe = _recipe(
        tmp_path, "tracking.backend=[tensorboard,mlflow]", "tracking.experiment_name=exp"
    )
    configure_environment(recipe)
    import os

    assert os.environ["TENSORBOARD_LOGGING_DIR"] == str(tmp_path / "run" / "runs" / "run")
    assert tensorboard_dir(recipe) == tmp_path / "run" / "runs" / "run"
    assert os.environ["MLFLOW_TRACKING_URI"] == (tmp_path / "run" / "mlruns").as_uri()
    assert os.environ["MLFLOW_EXPERIMENT_NAME"] == "exp"
    assert os.environ["MLFLOW_ENABLE_SYSTEM_METRICS_LOGGING"] == "false"
    assert report_to(_recipe(tmp_path, "tracking.backend=none")) == []
    assert flatten({"a": {"b": 1, "c": [1, 2]}, "d": None}) == {
        "a.b": "1",
        "a.c": "[1, 2]",
        "d": "None",
    }


# ---------------------------------------------------------------- one real process, tracked


@pytest.mark.slow
def test_single_process_run_trains_tracks_and_writes_a_manifest(
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # for this test's own client
    out = tmp_path / "run"
    log = tmp_path / "train.log"
    overrides = [
        *asset_overrides(training_assets, out),
        "training.max_steps=3",
        "training.save_every_steps=3",
        "data.max_train_examples=12",
        "tracking.backend=[tensorboard,mlflow]",
        "tracking.experiment_name=test-exp",
    ]
    check_launch(launch(None, "recipes/tiny-lora-cpu.yaml", overrides, log), log)
    text = log.read_text()
    assert "world size 1" in text and "running as ONE process by hand" in text

    manifest = read_manifest(out)
    assert manifest["kind"] == "train" and manifest["world_size"] == 1
    assert manifest["deepspeed"] is None  # one CPU process started by hand
    results: Any = manifest["results"]
    assert results["global_step"] == 3 and results["tokens_seen"] > 0
    assert results["tokens_seen"] <= manifest["dataset"]["train"]["tokens"]  # type: ignore[index]
    assert results["final_eval_loss"] is not None and results["tokens_per_second"] > 0
    assert manifest["dataset"]["tasks"]["diagnosis"]["content_sha256"]  # type: ignore[index]
    assert manifest["config"]["training"]["max_steps"] == 3  # type: ignore[index]
    assert manifest["libraries"]["deepspeed"] and manifest["git_commit"] is not None  # type: ignore[index]
    assert sorted(logged_losses(out)) == [1, 2, 3]

    final = out / "final"
    for name in (
        "adapter_model.safetensors",
        "adapter_config.json",
        "tokenizer.json",
        "chat_template.jinja",
    ):
        assert (final / name).is_file(), name
    assert not list(final.glob("*.bin")) and not list(final.glob("*.pt"))
    assert (out / "checkpoint-3").is_dir()

    # TensorBoard: event files with the loss scalar at every logged step
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    events = list((out / "runs").rglob("events.out.tfevents.*"))
    assert events
    acc = EventAccumulator(str(events[0].parent))
    acc.Reload()
    assert [e.step for e in acc.Scalars("train/loss")] == [1, 2, 3]

    # MLflow: one run in the run folder's file store with params, metrics and the manifest
    from mlflow.tracking import MlflowClient

    client = MlflowClient(tracking_uri=(out / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("test-exp")
    assert experiment is not None
    runs = client.search_runs([experiment.experiment_id])
    assert len(runs) == 1
    run = runs[0]
    assert run.info.status == "FINISHED"
    assert run.data.params["recipe.training.max_steps"] == "3"
    assert run.data.params["recipe.method.lora.r"] == "16"
    assert [m.step for m in client.get_metric_history(run.info.run_id, "loss")] == [1, 2, 3]
    assert run.data.metrics["tokens_seen"] == results["tokens_seen"]
    artifacts = {a.path for a in client.list_artifacts(run.info.run_id)}
    assert {"manifest.json", "trainer_state.json", "final"} <= artifacts
    final_artifacts = {a.path for a in client.list_artifacts(run.info.run_id, "final")}
    assert "final/adapter_model.safetensors" in final_artifacts
    assert manifest["outputs"]["mlflow"]["run_id"] == run.info.run_id  # type: ignore[index]


# ---------------------------------------------------------------- DeepSpeed checkpoints


class _Payload:
    """An arbitrary class: unpickling it would run its module's code."""


def test_deepspeed_checkpoints_load_weights_only(tmp_path: Path) -> None:
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import (
        TorchCheckpointEngine,
    )
    from deepspeed.runtime.fp16.loss_scaler import LossScaler
    from deepspeed.runtime.zero.config import ZeroStageEnum

    from llm.train.safe_resume import weights_only_deepspeed_checkpoints

    good, bad = tmp_path / "good.pt", tmp_path / "bad.pt"
    torch.save(
        {"w": torch.ones(2), "stage": ZeroStageEnum.gradients, "scaler": LossScaler(1.0)}, good
    )
    torch.save({"w": torch.ones(2), "payload": _Payload()}, bad)
    engine = TorchCheckpointEngine.__new__(TorchCheckpointEngine)
    original = TorchCheckpointEngine.load
    with weights_only_deepspeed_checkpoints():
        state = engine.load(str(good), map_location="cpu")
        assert state["stage"] == ZeroStageEnum.gradients and torch.equal(state["w"], torch.ones(2))
        with pytest.raises(BadInputError, match="outside the allowlist"):
            engine.load(str(bad), map_location="cpu")
    assert TorchCheckpointEngine.load is original
