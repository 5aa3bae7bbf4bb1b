"""``<output_dir>/manifest.json`` of a training run (docs/architecture.md, "Run manifest").

Built from the shared pieces in :mod:`llm.manifest` plus what only training
knows: the resolved recipe, the datasets' content hashes and counts, world
size, precision, parameter counts, final losses, real tokens seen and tokens/s.
Written by the main process only.
"""

from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm.manifest import base_manifest, library_versions, write_manifest
from llm.train.recipe import Recipe
from llm.train.result import TrainingResult

if TYPE_CHECKING:
    from llm.train.datasets import TrainingData
    from llm.train.model_setup import LoadedModel

MANIFEST_KIND = "train"
LIBRARIES = (
    "torch",
    "transformers",
    "tokenizers",
    "accelerate",
    "deepspeed",
    "peft",
    "datasets",
    "safetensors",
    "tensorboard",
    "mlflow",
)


def _round(value: float | None, digits: int = 6) -> float | None:
    return None if value is None else round(float(value), digits)


def write_run_manifest(
    recipe: Recipe,
    result: TrainingResult,
    *,
    started: float,
    loaded: LoadedModel,
    data: TrainingData,
    provenance: dict[str, Any],
    deepspeed: str | None,
    tensorboard: Path | None,
    mlflow_run_id: str | None,
) -> Path:
    """Write the run manifest and return its path.

    Args:
        recipe: the validated recipe (dumped in full, paths absolute).
        result: what training did.
        started: wall-clock start (``time.time()``).
        loaded: the model that was trained.
        data: the train/eval splits (counts only; no text goes into the manifest).
        provenance: dataset folder, manifest hash, per-task content hashes and counts.
        deepspeed: the DeepSpeed JSON used, or None.
        tensorboard: the TensorBoard event folder, or None.
        mlflow_run_id: the MLflow run, or None.
    """
    manifest = base_manifest(
        MANIFEST_KIND, started=datetime.fromtimestamp(started, tz=timezone.utc)
    )
    manifest.update(
        {
            "config": recipe.to_config_dict(),
            "seed": recipe.training.seed,
            "world_size": result.world_size,
            "precision": loaded.precision,
            "deepspeed": deepspeed,
            "resumed_from": str(result.resumed_from) if result.resumed_from else None,
            "dataset": {
                **provenance,
                "train": data.train.summary(),
                "eval": data.eval.summary() if data.eval is not None else None,
            },
            "model": {
                "base": str(recipe.model.base),
                "method": recipe.method.kind,
                "multimodal": recipe.model.multimodal,
                "total_params": loaded.total_params,
                "trainable_params": loaded.trainable_params,
            },
            "results": {
                "global_step": result.global_step,
                "final_train_loss": _round(result.train_loss),
                "final_eval_loss": _round(result.eval_loss),
                "last_logged_train_loss": _round(
                    next(
                        (e["loss"] for e in reversed(result.log_history) if "loss" in e),
                        None,
                    )
                ),
                "tokens_seen": result.tokens_seen,
                "tokens_per_second": _round(result.tokens_per_second, 2),
            },
            "outputs": {
                "final": str(result.final_dir),
                "trainer_state": str(result.output_dir / "trainer_state.json"),
                "tensorboard": str(tensorboard) if tensorboard else None,
                "mlflow": {
                    "tracking_uri": recipe.mlflow_tracking_uri,
                    "experiment": recipe.tracking.experiment_name,
                    "run_id": mlflow_run_id,
                }
                if mlflow_run_id
                else None,
            },
            "libraries": library_versions(LIBRARIES),
        }
    )
    return write_manifest(result.output_dir, manifest)
