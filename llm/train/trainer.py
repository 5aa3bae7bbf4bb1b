"""The one training path: every recipe (full / LoRA / QLoRA, text or images, 1 or N
processes, with or without DeepSpeed) runs through :func:`run_training`.

It is the HF ``transformers.Trainer`` (subclassed only to count real tokens,
:mod:`llm.train.callbacks`) fed by this project's own data path:
:mod:`llm.models.chat_tokenize` (assistant-only labels) and :mod:`llm.train.packing`
(padding-free packing with position-id restarts). TRL's ``SFTTrainer`` was
left out on purpose: it would tokenize and pack again with its own rules, so
the labels and packing that the eval harness, the bench and the tests check
would no longer be the ones that train. The Trainer brings what matters here:
DeepSpeed through accelerate (it fills the JSONs' ``"auto"`` values), exact
resume (optimizer, scheduler, RNG states and skipping seen batches), eval and
save cadence, early stopping and the TensorBoard/MLflow callbacks.

Order matters in :func:`run_training`:

1. accelerate's process state with gloo on CPU, then the world-size guard;
2. ``TrainingArguments`` (with ZeRO-3 it registers the DeepSpeed config, so
   weights are partitioned while they load);
3. model, adapters, data, Trainer; the MLflow run (main process);
4. train (optionally from the newest checkpoint), final eval, final save,
   ``manifest.json``.

Outputs in ``training.output_dir``: ``checkpoint-N/`` (HF/DeepSpeed layout),
``final/`` (adapter or full model in safetensors, tokenizer or processor,
chat template), ``trainer_state.json`` (log history), ``manifest.json``,
``runs/<name>/`` (TensorBoard) and ``mlruns/`` (MLflow file store).
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import time
from pathlib import Path
from typing import Any

from llm.errors import BadInputError
from llm.files import check_writable_dir
from llm.train.callbacks import (
    RecipeTrainer,
    StopAfterCheckpoint,
    TokenCountingCollator,
    stop_after_step,
)
from llm.train.checkpoints import (
    checkpoint_step,
    choose_resume_checkpoint,
    last_complete_checkpoint,
    list_checkpoints,
    save_failure,
    set_aside,
)
from llm.train.datasets import TrainingData, build_training_data, dataset_provenance
from llm.train.distributed import (
    check_world_size,
    init_distributed_state,
    is_cpu_run,
    read_json_config,
    zero_stage,
)
from llm.train.loss import accepts_logits_to_keep
from llm.train.model_setup import LoadedModel, base_config, load_model, training_precision
from llm.train.recipe import Recipe
from llm.train.result import TrainingResult
from llm.train.run_manifest import write_run_manifest
from llm.train.safe_resume import weights_only_deepspeed_checkpoints
from llm.train.tracking import (
    MlflowRun,
    configure_environment,
    report_to,
    run_name,
    start_mlflow_run,
    tensorboard_dir,
)

log = logging.getLogger(__name__)

FINAL_DIR = "final"
TRAINER_STATE = "trainer_state.json"
# Environment variables a launcher (accelerate, torchrun, deepspeed) sets in every process.
LAUNCHER_ENV = ("WORLD_SIZE", "LOCAL_RANK", "ACCELERATE_MIXED_PRECISION")


def launched_by_launcher() -> bool:
    """Whether this process was started by accelerate/torchrun (not by hand)."""
    return any(name in os.environ for name in LAUNCHER_ENV)


def resume_checkpoint(output_dir: Path, resume: bool) -> Path | None:
    """The checkpoint to resume from, or None for a fresh run.

    With ``resume``, the newest COMPLETE checkpoint (:mod:`llm.train.checkpoints`):
    newer incomplete ones (a process killed or a disk full while saving) are logged,
    named and never loaded; the main process moves them aside
    (:func:`set_aside_incomplete`).

    Raises:
        BadInputError: ``resume`` without any complete checkpoint in ``output_dir``
            (each incomplete one named with its problem), or a fresh run into a folder
            that already holds checkpoints (they would be mixed up with the new run's
            and rotated away).
    """
    if resume:
        main = int(os.environ.get("RANK", "0")) == 0
        checkpoint, _ = choose_resume_checkpoint(output_dir, log_skipped=main)
        return checkpoint
    existing = list_checkpoints(output_dir)
    if existing:
        raise BadInputError(
            f"training.output_dir {output_dir} already holds checkpoints ({existing[-1].name}): "
            "pass --resume to continue that run, or choose a new output_dir "
            f"(--set training.output_dir=...)"
        )
    return None


def set_aside_incomplete(output_dir: Path, checkpoint: Path) -> None:
    """Move the incomplete checkpoints newer than ``checkpoint`` aside (main process only).

    The resumed run writes those steps afresh; every process waits until the
    folder is clean.
    """
    import torch.distributed as dist

    if int(os.environ.get("RANK", "0")) == 0:
        step = checkpoint_step(checkpoint) or 0
        for other in list_checkpoints(output_dir):
            if (checkpoint_step(other) or 0) > step:
                set_aside(other)
    if dist.is_available() and dist.is_initialized():
        dist.barrier()


def _expected_world_size(recipe: Recipe) -> int | None:
    if launched_by_launcher():
        return recipe.world_size if recipe.launch.accelerate_config is not None else None
    if recipe.world_size > 1:
        log.warning(
            "running as ONE process by hand; the recipe's launch config asks for %d. "
            "For all of them: accelerate launch --config_file %s -m llm.train RECIPE",
            recipe.world_size,
            recipe.launch.accelerate_config,
        )
    return None


def _use_deepspeed(recipe: Recipe, world_size: int) -> str | None:
    """The DeepSpeed JSON to hand the Trainer, or None.

    A single process started by hand on CPU runs without DeepSpeed: ZeRO shards
    nothing over one process, and DeepSpeed's CPU engine needs a launcher's
    process group. On a GPU one process keeps it (ZeRO-3 offload fits large
    models on one card).
    """
    if recipe.deepspeed is None:
        return None
    if world_size == 1 and not launched_by_launcher() and is_cpu_run():
        log.info("one CPU process started by hand: DeepSpeed (%s) left out", recipe.deepspeed.name)
        return None
    return str(recipe.deepspeed)


def build_training_arguments(
    recipe: Recipe, *, precision: str, deepspeed: str | None, has_eval: bool
) -> Any:
    """``TrainingArguments`` from the recipe (see recipes/README.md for each field).

    Args:
        recipe: the validated recipe.
        precision: ``bf16``, ``fp16`` or ``fp32`` (:func:`training_precision`).
        deepspeed: the DeepSpeed JSON path, or None.
        has_eval: whether there is an eval split.

    Returns:
        The arguments; with a ZeRO-3 config, creating them registers it globally.
    """
    from accelerate import PartialState
    from transformers import TrainingArguments

    t = recipe.training
    evaluates = has_eval and t.eval_every_steps is not None
    saves = t.save_every_steps is not None
    early = t.early_stopping_patience is not None
    kwargs: dict[str, Any] = {}
    if PartialState._shared_state:
        # keep the gloo state llm.train.distributed made (see its docstring)
        kwargs["accelerator_config"] = {"use_configured_state": True}
    return TrainingArguments(
        output_dir=str(t.output_dir),
        max_steps=t.max_steps if t.max_steps is not None else -1,
        num_train_epochs=t.num_epochs if t.num_epochs is not None else 1.0,
        learning_rate=t.learning_rate,
        lr_scheduler_type=t.lr_scheduler,
        warmup_steps=t.warmup_ratio,  # a float below 1 is a fraction of the steps
        weight_decay=t.weight_decay,
        max_grad_norm=t.max_grad_norm,
        per_device_train_batch_size=t.micro_batch_size,
        per_device_eval_batch_size=t.micro_batch_size,
        gradient_accumulation_steps=t.gradient_accumulation_steps,
        seed=t.seed,
        data_seed=t.seed,
        eval_strategy="steps" if evaluates else "no",
        eval_steps=t.eval_every_steps if evaluates else None,
        save_strategy="steps" if saves else "no",
        save_steps=t.save_every_steps if t.save_every_steps is not None else 500,
        save_total_limit=t.save_total_limit,
        logging_steps=t.logging_steps,
        gradient_checkpointing=t.gradient_checkpointing,
        gradient_checkpointing_kwargs={"use_reentrant": False}
        if t.gradient_checkpointing
        else None,
        load_best_model_at_end=early,
        metric_for_best_model="eval_loss" if early else None,
        greater_is_better=False if early else None,
        deepspeed=deepspeed,
        bf16=precision == "bf16",
        fp16=precision == "fp16",
        use_cpu=is_cpu_run(),
        report_to=report_to(recipe),
        run_name=run_name(recipe),
        # the collators read seq_lens/pixel_values; the datasets hold only what they need
        remove_unused_columns=False,
        label_names=["labels"],
        prediction_loss_only=True,
        include_num_input_tokens_seen="no",  # counted by RecipeTrainer (real tokens)
        dataloader_num_workers=0,
        **kwargs,
    )


def _collator(recipe: Recipe, loaded: LoadedModel) -> TokenCountingCollator:
    from llm.train.packing import CU_SEQLENS_ATTENTION, PackedCollator, PaddedCollator

    pad_id = loaded.tokenizer.pad_token_id
    if recipe.data.packing:
        flash = recipe.model.attn_implementation in CU_SEQLENS_ATTENTION
        if recipe.model.attn_implementation == "sdpa":
            log.info(
                "packing with sdpa: each row gets a block-diagonal mask; "
                "model.attn_implementation: sdpa_varlen runs each example apart (same loss, "
                "faster on CPU)"
            )
        packed = PackedCollator(
            max_length=recipe.data.max_length, pad_token_id=pad_id, flash_attn_kwargs=flash
        )
        packed.check_model(loaded.model)
        return TokenCountingCollator(packed)
    return TokenCountingCollator(PaddedCollator(pad_token_id=pad_id))


def _callbacks(recipe: Recipe) -> list[Any]:
    from transformers import EarlyStoppingCallback

    callbacks: list[Any] = []
    if recipe.training.early_stopping_patience is not None:
        callbacks.append(EarlyStoppingCallback(recipe.training.early_stopping_patience))
    stop = stop_after_step()
    if stop is not None:
        callbacks.append(StopAfterCheckpoint(stop))
    return callbacks


def _final_loss(history: list[dict[str, Any]], key: str) -> float | None:
    values = [entry[key] for entry in history if key in entry]
    return float(values[-1]) if values else None


def _save_final(trainer: RecipeTrainer, recipe: Recipe, final_dir: Path) -> None:
    """Adapter or full model (safetensors; gathered under ZeRO-3) plus tokenizer/processor."""
    # Trainer.save_model gathers ZeRO-3 shards (stage3_gather_16bit_weights_on_model_save),
    # writes safetensors and the processing class (tokenizer + chat template, or the
    # processor); for a PeftModel it writes adapter_model.safetensors + adapter_config.json.
    trainer.save_model(str(final_dir))
    if trainer.is_world_process_zero():
        # The Trainer also drops a pickled TrainingArguments there; final/ is loaded by
        # export and serving, which must never meet a pickle (the manifest has the recipe).
        (final_dir / "training_args.bin").unlink(missing_ok=True)
        model = trainer.model
        base = getattr(model, "get_base_model", lambda: model)()
        generation = getattr(base, "generation_config", None)
        if generation is not None and recipe.method.kind != "full":
            generation.save_pretrained(str(final_dir))


def _mlflow_artifacts(run: MlflowRun, recipe: Recipe, output_dir: Path, final_dir: Path) -> None:
    run.log_artifacts([output_dir / "manifest.json", output_dir / TRAINER_STATE])
    final_files = ["adapter_config.json", "config.json", "generation_config.json"]
    if recipe.method.kind != "full":
        # adapters are small; full weights stay in final/ (the manifest points there)
        final_files.append("adapter_model.safetensors")
    run.log_artifacts([final_dir / name for name in final_files], artifact_path=FINAL_DIR)


def _set_cpu_threads(recipe: Recipe) -> None:
    """Apply ``training.cpu_threads`` on CPU runs (before any kernel starts its thread pool)."""
    import torch

    if not is_cpu_run():
        return
    threads = recipe.training.cpu_threads
    if threads is None:  # the cores, shared out among this machine's processes
        local_processes = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
        threads = max(1, (os.cpu_count() or 1) // max(1, local_processes))
    torch.set_num_threads(threads)
    log.info("CPU run: %d torch thread(s) per process", threads)


def run_training(recipe: Recipe, *, resume: bool = False) -> TrainingResult:
    """Fine-tune the model of ``recipe``; write checkpoints, the final model and a manifest.

    Args:
        recipe: a validated recipe (:func:`llm.train.recipe.load_recipe`).
        resume: continue from the newest ``checkpoint-N`` in ``training.output_dir``
            (same data order: the Trainer skips the batches already trained on).

    Returns:
        What the run did (losses, tokens, where the outputs are).

    Raises:
        BadInputError: a launch that started fewer processes than the recipe's
            launch config asks for, missing or malformed model/data folders, an
            output folder that cannot be written, a resume without a complete
            checkpoint, or a fresh run into a folder with checkpoints.
        CheckpointSaveError: a checkpoint or the final model could not be written
            (full disk); earlier checkpoints are left as they were.
    """
    from transformers import set_seed

    started_wall = time.time()
    init_distributed_state()
    if int(os.environ.get("RANK", "0")) != 0:
        logging.getLogger("llm").setLevel(logging.WARNING)  # rank 0 tells the story once
    _set_cpu_threads(recipe)
    world_size = check_world_size(_expected_world_size(recipe))
    log.info("training %s with world size %d", recipe.training.output_dir.name, world_size)
    output_dir = recipe.training.output_dir
    checkpoint = resume_checkpoint(output_dir, resume)
    check_writable_dir(
        output_dir,
        what="training.output_dir",
        hint="choose another folder (--set training.output_dir=...) or free space there",
    )
    output_dir.mkdir(parents=True, exist_ok=True)
    if checkpoint is not None:
        set_aside_incomplete(output_dir, checkpoint)
    precision = training_precision(recipe, base_config(recipe))
    provenance = dataset_provenance(recipe.data.dataset_dir, recipe.data.tasks)
    configure_environment(recipe)
    deepspeed = _use_deepspeed(recipe, world_size)
    args = build_training_arguments(
        recipe,
        precision=precision,
        deepspeed=deepspeed,
        has_eval=recipe.data.eval_split is not None,
    )
    set_seed(recipe.training.seed)  # adapter initialisation and dropout
    loaded = load_model(
        recipe,
        precision=precision,
        deepspeed=deepspeed is not None,
        deepspeed_stage=zero_stage(read_json_config(Path(deepspeed))) if deepspeed else None,
    )
    data = _training_data(recipe, loaded)
    sparse_logits = recipe.training.sparse_logits
    if sparse_logits and not accepts_logits_to_keep(loaded.model):
        raise BadInputError(
            f"training.sparse_logits: {type(loaded.model).__name__}.forward takes no "
            "logits_to_keep; set training.sparse_logits=false for this model"
        )
    trainer = RecipeTrainer(
        model=loaded.model,
        args=args,
        train_dataset=data.train.dataset,
        eval_dataset=data.eval.dataset if data.eval is not None else None,
        data_collator=_collator(recipe, loaded),
        processing_class=loaded.processor or loaded.tokenizer,
        callbacks=_callbacks(recipe),
        sparse_logits=sparse_logits,
    )
    main = trainer.is_world_process_zero()
    mlflow_run = None
    if main:
        mlflow_run = start_mlflow_run(recipe, resumed_from=str(checkpoint) if checkpoint else None)
    try:
        # DeepSpeed's own loader would unpickle its checkpoints (resume, best model at end)
        guard = weights_only_deepspeed_checkpoints() if deepspeed else contextlib.nullcontext()
        with guard:
            output = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
        eval_metrics: dict[str, float] = {}
        if data.eval is not None and not any(
            e.get("step") == trainer.state.global_step and "eval_loss" in e
            for e in trainer.state.log_history
        ):
            eval_metrics = trainer.evaluate()
        final_dir = output_dir / FINAL_DIR
        try:
            _save_final(trainer, recipe, final_dir)
        except Exception as exc:
            raise save_failure(final_dir, exc, last_complete_checkpoint(output_dir)) from exc
    except BaseException:
        if mlflow_run is not None:
            mlflow_run.end("FAILED")
        raise
    history = list(trainer.state.log_history)
    session_seconds = float(output.metrics.get("train_runtime", 0.0)) or math.nan
    result = TrainingResult(
        output_dir=output_dir,
        final_dir=final_dir,
        manifest_path=output_dir / "manifest.json",
        world_size=world_size,
        global_step=trainer.state.global_step,
        train_loss=output.metrics.get("train_loss"),
        eval_loss=eval_metrics.get("eval_loss", _final_loss(history, "eval_loss")),
        tokens_seen=int(trainer.state.num_input_tokens_seen),
        tokens_per_second=trainer.session_tokens / session_seconds if session_seconds else 0.0,
        resumed_from=checkpoint,
        log_history=history,
    )
    if main:
        trainer.state.save_to_json(str(output_dir / TRAINER_STATE))
        write_run_manifest(
            recipe,
            result,
            started=started_wall,
            loaded=loaded,
            data=data,
            provenance=provenance,
            deepspeed=deepspeed,
            tensorboard=tensorboard_dir(recipe)
            if "tensorboard" in recipe.tracking.backends
            else None,
            mlflow_run_id=mlflow_run.run_id if mlflow_run else None,
        )
        if mlflow_run is not None:
            mlflow_run.log_metrics(
                {
                    "final_train_loss": result.train_loss or math.nan,
                    "final_eval_loss": result.eval_loss
                    if result.eval_loss is not None
                    else math.nan,
                    "tokens_seen": result.tokens_seen,
                    "real_tokens_per_second": result.tokens_per_second,
                },
                step=result.global_step,
            )
            _mlflow_artifacts(mlflow_run, recipe, output_dir, final_dir)
            mlflow_run.end()
    _barrier()
    log.info(
        "trained %d steps (world size %d): train loss %s, eval loss %s, %d real tokens, %.0f tok/s",
        result.global_step,
        world_size,
        result.train_loss,
        result.eval_loss,
        result.tokens_seen,
        result.tokens_per_second,
    )
    return result


def _training_data(recipe: Recipe, loaded: LoadedModel) -> TrainingData:
    transform = None
    if recipe.model.multimodal:
        from llm.train.multimodal import PixelValues

        transform = PixelValues(loaded.processor, recipe.data.dataset_dir)
    data = build_training_data(
        recipe, loaded.tokenizer, image_seq_length=loaded.image_seq_length, transform=transform
    )
    log.info(
        "train: %d examples, %d rows, %d tokens (%d trained)%s",
        data.train.examples,
        len(data.train.dataset),
        data.train.tokens,
        data.train.label_tokens,
        f"; eval: {data.eval.examples} examples" if data.eval is not None else "",
    )
    return data


def _barrier() -> None:
    import torch.distributed as dist

    # other ranks wait for the main process's manifest before returning
    if dist.is_available() and dist.is_initialized():
        dist.barrier()
