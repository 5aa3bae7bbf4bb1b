"""Experiment tracking: TensorBoard event files and an MLflow run, on this machine by default.

The HF Trainer's own callbacks write the metrics (``report_to``). This module
decides where they go and owns the MLflow run around them:

* TensorBoard: event files in ``<output_dir>/runs/<run name>`` (the Trainer's
  ``TensorBoardCallback`` reads ``TENSORBOARD_LOGGING_DIR``).
* MLflow: the recipe's tracking URI, or a file store ``file:<output_dir>/mlruns``.
  The run is started here, on the main process only, before training, so the
  Trainer's ``MLflowCallback`` logs into it instead of opening its own; the
  recipe (flattened, ``recipe.*``) is logged as params, and after training the
  manifest and the final adapter/config are logged as artifacts. MLflow's
  system metrics and telemetry are turned off: nothing leaves the machine
  unless the recipe's URI points elsewhere.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm.env import private_env
from llm.errors import BadInputError
from llm.train.recipe import Recipe

log = logging.getLogger(__name__)

# MLflow limits a param value to this many characters (mlflow.utils.validation).
_MAX_PARAM_CHARS = 6000
# (telemetry and system metrics are off through llm.env, applied with these)
TRACKING_ENV = {
    # the Trainer's callback would otherwise copy every checkpoint into the store
    "HF_MLFLOW_LOG_ARTIFACTS": "false",
    # MLflow 3 refuses `file:` stores unless told; the local file store is this
    # project's default (a `sqlite:///...` tracking URI works too, and needs no opt-in)
    "MLFLOW_ALLOW_FILE_STORE": "true",
}


def run_name(recipe: Recipe) -> str:
    """The run's name in TensorBoard and MLflow: the recipe's, or the output folder's name."""
    return recipe.tracking.run_name or recipe.training.output_dir.name


def tensorboard_dir(recipe: Recipe) -> Path:
    """Where TensorBoard event files of the run go."""
    return recipe.training.output_dir / "runs" / run_name(recipe)


def report_to(recipe: Recipe) -> list[str]:
    """The Trainer's ``report_to``: the recipe's backends (an empty list for ``none``)."""
    return list(recipe.tracking.backends)


def configure_environment(recipe: Recipe) -> None:
    """Point the Trainer's tracking callbacks at the run's folders; telemetry off.

    Sets ``TENSORBOARD_LOGGING_DIR``, ``MLFLOW_TRACKING_URI``,
    ``MLFLOW_EXPERIMENT_NAME`` and the telemetry switches for this process.

    Raises:
        BadInputError: a backend's package is not installed.
    """
    import importlib.util

    backends = recipe.tracking.backends
    packages = {"tensorboard": "tensorboard", "mlflow": "mlflow"}
    for backend in backends:
        if importlib.util.find_spec(packages[backend]) is None:
            raise BadInputError(
                f"tracking.backend: {backend} is not installed: pip install {packages[backend]} "
                "(or drop it from tracking.backend)"
            )
    os.environ.update(private_env(os.environ, **TRACKING_ENV))
    if "tensorboard" in backends:
        os.environ["TENSORBOARD_LOGGING_DIR"] = str(tensorboard_dir(recipe))
    if "mlflow" in backends:
        os.environ["MLFLOW_TRACKING_URI"] = recipe.mlflow_tracking_uri
        os.environ["MLFLOW_EXPERIMENT_NAME"] = recipe.tracking.experiment_name


def flatten(config: dict[str, Any], prefix: str = "") -> dict[str, str]:
    """Nested dict -> ``{"a.b.c": "value"}`` with values as MLflow stores them (strings)."""
    flat: dict[str, str] = {}
    for key, value in config.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, f"{name}."))
        else:
            flat[name] = str(value)[:_MAX_PARAM_CHARS]
    return flat


@dataclass
class MlflowRun:
    """The MLflow run of one training session (main process only).

    Attributes:
        run_id: the run's id in the store.
        tracking_uri: where the store is.
        experiment_name: the experiment it belongs to.
    """

    run_id: str
    tracking_uri: str
    experiment_name: str

    def log_artifacts(self, files: Iterable[Path], artifact_path: str | None = None) -> None:
        """Copy ``files`` (those that exist) into the run's artifact store."""
        import mlflow

        for file in files:
            if file.is_file():
                mlflow.log_artifact(str(file), artifact_path=artifact_path, run_id=self.run_id)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log end-of-run figures (final losses, tokens/s) to the run."""
        import mlflow

        clean = {k: float(v) for k, v in metrics.items() if isinstance(v, int | float)}
        if clean:
            mlflow.log_metrics(clean, step=step, run_id=self.run_id)

    def end(self, status: str = "FINISHED") -> None:
        """Close the run (FINISHED, FAILED or KILLED)."""
        import mlflow

        active = mlflow.active_run()
        if active is not None and active.info.run_id == self.run_id:
            mlflow.end_run(status=status)


def start_mlflow_run(recipe: Recipe, *, resumed_from: str | None = None) -> MlflowRun | None:
    """Open the run's MLflow run and log the recipe as params (call on the main process).

    Args:
        recipe: the validated recipe.
        resumed_from: the checkpoint a resumed session starts from (tagged on the run).

    Returns:
        The run, or None when MLflow is not one of the recipe's backends.
    """
    if "mlflow" not in recipe.tracking.backends:
        return None
    import mlflow

    uri = recipe.mlflow_tracking_uri
    mlflow.set_tracking_uri(uri)
    mlflow.set_experiment(recipe.tracking.experiment_name)
    # a run left open by an earlier session in this process would swallow this one
    if mlflow.active_run() is not None:
        mlflow.end_run()
    tags = {"clinical_llm.output_dir": str(recipe.training.output_dir)}
    if resumed_from:
        tags["clinical_llm.resumed_from"] = resumed_from
    run = mlflow.start_run(run_name=run_name(recipe), tags=tags)
    params = flatten(recipe.to_config_dict(), "recipe.")
    items = list(params.items())
    for i in range(0, len(items), 100):  # MLflow takes at most 100 params per call
        mlflow.log_params(dict(items[i : i + 100]))
    log.info(
        "MLflow run %s in %s (experiment %s)", run.info.run_id, uri, recipe.tracking.experiment_name
    )
    return MlflowRun(run.info.run_id, uri, recipe.tracking.experiment_name)
