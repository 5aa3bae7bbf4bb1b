"""Assets and launch helpers of the real training tests (import the fixtures you use).

One set of assets per test session, made by the project's own commands: a
60-patient synthetic cohort (``data synth``), its task datasets (``data
build``: diagnosis, readmission and the two image tasks) and the tiny model
with its vision-language twin (``model init --steps 20 --multimodal``). With
pytest-xdist every worker asks for them; a file lock in the shared base temp
folder makes the first worker build them and the others wait and reuse them.

Multi-process runs go through the real launcher, exactly as a user types it:
``accelerate launch --config_file recipes/accelerate/cpu-zero2.yaml -m
llm.train RECIPE --set ...``, with ``TORCH_EXTENSIONS_DIR`` pointing at
``<repo>/build/torch_extensions`` so DeepSpeed's shm_comm op is compiled once.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from filelock import FileLock

REPO = Path(__file__).resolve().parents[2]
PYTHON = Path(sys.executable)
ACCELERATE = PYTHON.parent / "accelerate"
TASKS = "diagnosis,readmission,radiology_impression,ecg_rhythm"
LAUNCH_TIMEOUT_S = 600


@dataclass(frozen=True)
class TrainingAssets:
    """Where the session's model and datasets are."""

    model: Path
    vlm: Path
    datasets: Path


def _run(argv: Sequence[str], log: Path) -> None:
    with log.open("w") as out:
        proc = subprocess.run(
            list(argv), cwd=REPO, stdout=out, stderr=subprocess.STDOUT, timeout=LAUNCH_TIMEOUT_S
        )
    if proc.returncode != 0:
        raise RuntimeError(
            f"{' '.join(argv)} failed ({proc.returncode}):\n{log.read_text()[-4000:]}"
        )


def _build_assets(root: Path) -> TrainingAssets:
    assets = TrainingAssets(root / "tiny-clinical", root / "tiny-clinical-vl", root / "datasets")
    if (root / "done").exists():
        return assets
    cli = [str(PYTHON.parent / "clinical-llm")]
    cohort = root / "cohort"
    _run([*cli, "data", "synth", "--patients", "60", "--seed", "3", "--out", str(cohort)],
         root / "synth.log")  # fmt: skip
    _run([*cli, "data", "build", "--records", str(cohort / "records.jsonl"), "--tasks", TASKS,
          "--seed", "3", "--out", str(assets.datasets)], root / "build.log")  # fmt: skip
    # `model init` through its own Typer app: the command is registered by llm.cli.model
    init = (
        "import sys, typer\n"
        "from llm.cli import model\n"
        "app = typer.Typer()\n"
        "model.register(app)\n"
        "app.callback()(lambda: None)\n"
        "app(sys.argv[1:])\n"
    )
    records = str(cohort / "records.jsonl")
    _run([str(PYTHON), "-c", init, "model", "init", "--records", records,
          "--out", str(assets.model), "--steps", "20", "--block-size", "256", "--threads", "1",
          "--exclude-eval-patients-of", str(assets.datasets), "--multimodal"],
         root / "model.log")  # fmt: skip
    (root / "done").write_text("ok\n")
    return assets


def session_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """This test session's temp folder, the same for every xdist worker."""
    base = tmp_path_factory.getbasetemp()
    # under xdist each worker's basetemp is <session>/popen-gwN
    return base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base


@pytest.fixture(scope="session")
def training_assets(tmp_path_factory: pytest.TempPathFactory) -> TrainingAssets:
    """The tiny model, its VLM twin and small task datasets, built once per session."""
    shared = session_dir(tmp_path_factory)
    root = shared / "train-assets"
    root.mkdir(exist_ok=True)
    with FileLock(str(shared / "train-assets.lock")):
        return _build_assets(root)


def training_env(**extra: str) -> dict[str, str]:
    """The environment of a training subprocess: offline, cached DeepSpeed ops."""
    env = dict(os.environ)
    env.update(
        {
            "TORCH_EXTENSIONS_DIR": str(REPO / "build" / "torch_extensions"),
            "HF_HUB_OFFLINE": "1",
            "PYTHONUNBUFFERED": "1",
        }
    )
    env.pop("CLINICAL_LLM_STOP_AFTER_STEP", None)
    env.update(extra)
    return env


def asset_overrides(
    assets: TrainingAssets, output_dir: Path, *, multimodal: bool = False
) -> list[str]:
    """``--set`` arguments pointing a shipped recipe at the session's assets, kept tiny."""
    model = assets.vlm if multimodal else assets.model
    return [
        f"model.base={model}",
        f"data.dataset_dir={assets.datasets}",
        f"training.output_dir={output_dir}",
        "data.max_length=256",
        "training.logging_steps=1",
        "training.micro_batch_size=2",
        "training.gradient_accumulation_steps=1",
        "training.early_stopping_patience=null",
        "training.eval_every_steps=null",
        "training.cpu_threads=1",  # pytest-xdist runs another worker beside this run
    ]


def launch(
    accelerate_config: str | None,
    recipe: str,
    overrides: Sequence[str],
    log: Path,
    *,
    env: dict[str, str] | None = None,
    args: Sequence[str] = (),
) -> subprocess.CompletedProcess[str]:
    """Run ``[accelerate launch --config_file C] -m llm.train RECIPE --set ...``; output to ``log``.

    Args:
        accelerate_config: ``recipes/accelerate/*.yaml``, or None for one plain process.
        recipe: ``recipes/*.yaml``.
        overrides: ``key=value`` strings for ``--set``.
        log: file that gets stdout and stderr.
        env: the environment (default: :func:`training_env`).
        args: more ``llm.train`` arguments (``--resume``).

    Returns:
        The finished process (its return code is not checked here).
    """
    argv: list[str] = []
    if accelerate_config is not None:
        argv += [str(ACCELERATE), "launch", "--config_file", accelerate_config]
    else:
        argv += [str(PYTHON)]
    argv += ["-m", "llm.train", recipe]
    for item in overrides:
        argv += ["--set", item]
    argv += list(args)
    with log.open("w") as out:
        return subprocess.run(
            argv,
            cwd=REPO,
            env=env or training_env(),
            stdout=out,
            stderr=subprocess.STDOUT,
            text=True,
            timeout=LAUNCH_TIMEOUT_S,
        )


def check_launch(proc: subprocess.CompletedProcess[str], log: Path) -> None:
    """Fail the test with the log's tail when a launch did not exit 0."""
    if proc.returncode != 0:
        pytest.fail(f"training exited {proc.returncode}:\n{log.read_text()[-6000:]}")


def read_manifest(output_dir: Path) -> dict[str, object]:
    """``output_dir/manifest.json``."""
    data = json.loads((output_dir / "manifest.json").read_text())
    assert isinstance(data, dict)
    return data


def logged_losses(output_dir: Path, key: str = "loss") -> dict[int, float]:
    """Step -> logged value (``loss`` or ``eval_loss``) from ``output_dir/trainer_state.json``."""
    state = json.loads((output_dir / "trainer_state.json").read_text())
    return {int(e["step"]): float(e[key]) for e in state["log_history"] if key in e}


# The LoRA + ZeRO-2 run shared by the launch test and the resume test (its uninterrupted
# reference): packed batches, a checkpoint and an eval every RESUME_EVERY steps.
RESUME_STEPS = 4
RESUME_EVERY = 2


def zero2_lora_overrides(assets: TrainingAssets, output_dir: Path) -> list[str]:
    """Overrides of ``recipes/tiny-lora-cpu.yaml`` for the shared ZeRO-2 run."""
    return [
        *asset_overrides(assets, output_dir),
        "data.packing=true",
        "data.max_train_examples=32",
        f"training.max_steps={RESUME_STEPS}",
        f"training.save_every_steps={RESUME_EVERY}",
        f"training.eval_every_steps={RESUME_EVERY}",
        "training.save_total_limit=4",
        "tracking.backend=[tensorboard,mlflow]",
    ]


@pytest.fixture(scope="session")
def zero2_lora_run(
    training_assets: TrainingAssets, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """Output folder of one uninterrupted 2-process LoRA + ZeRO-2 run (made once per session)."""
    shared = session_dir(tmp_path_factory)
    out = shared / "zero2-lora-run"
    with FileLock(str(shared / "zero2-lora-run.lock")):
        if not (out / "manifest.json").is_file():
            log = shared / "zero2-lora-run.log"
            proc = launch(
                "recipes/accelerate/cpu-zero2.yaml",
                "recipes/tiny-lora-cpu.yaml",
                zero2_lora_overrides(training_assets, out),
                log,
            )
            check_launch(proc, log)
    return out
