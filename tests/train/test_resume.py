"""Interrupt a real 2-process DeepSpeed run after a checkpoint, ``--resume`` it, and get
the same run as one that was never interrupted.

The reference is the shared uninterrupted LoRA + ZeRO-2 run (packed batches,
:func:`tests.train.fixtures.zero2_lora_run`). The interrupted run is the same
command with ``CLINICAL_LLM_STOP_AFTER_STEP=2``: every process exits right
after ``checkpoint-2`` is written, before the final save and the manifest, as
a preempted job would. ``--resume`` then finishes it from ``checkpoint-2``.

Tolerance: the resumed steps see the same batches (the Trainer skips the ones
already trained on), the restored optimizer/scheduler/RNG states and the same
reduction order, so losses agree to float32 round-off; measured identical
here. The test allows ``rel=1e-4``: room for a different summation order in a
future library version, far below the loss change of one step (~1e-2).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from llm.train.callbacks import STOP_AFTER_STEP_ENV, STOP_EXIT_CODE
from tests.train.fixtures import (
    RESUME_EVERY,
    RESUME_STEPS,
    TrainingAssets,
    launch,
    logged_losses,
    read_manifest,
    training_assets,  # noqa: F401  (fixture)
    training_env,
    zero2_lora_overrides,
    zero2_lora_run,  # noqa: F401  (fixture)
)

pytestmark = pytest.mark.slow

ZERO2 = "recipes/accelerate/cpu-zero2.yaml"
RECIPE = "recipes/tiny-lora-cpu.yaml"
LOSS_RTOL = 1e-4


def test_resume_after_interruption_matches_the_uninterrupted_run(
    training_assets: TrainingAssets,  # noqa: F811
    zero2_lora_run: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    overrides = zero2_lora_overrides(training_assets, out)

    stopped = tmp_path / "stopped.log"
    env = training_env(**{STOP_AFTER_STEP_ENV: str(RESUME_EVERY)})
    proc = launch(ZERO2, RECIPE, overrides, stopped, env=env)
    text = stopped.read_text()
    assert proc.returncode != 0, "the interrupted run should fail"
    assert (
        f"exit code: {STOP_EXIT_CODE}" in text
        or f"exitcode  : {STOP_EXIT_CODE}" in text
        or (f"stopping after the checkpoint of step {RESUME_EVERY}" in text)
    ), text[-3000:]
    assert (out / f"checkpoint-{RESUME_EVERY}" / "trainer_state.json").is_file()
    assert not (out / "final").exists() and not (out / "manifest.json").exists()

    # a fresh start into the same folder is refused: it would mix two runs' checkpoints
    refused = tmp_path / "refused.log"
    assert launch(None, RECIPE, overrides, refused).returncode == 2
    assert "pass --resume" in refused.read_text()

    resumed_log = tmp_path / "resumed.log"
    proc = launch(ZERO2, RECIPE, overrides, resumed_log, args=["--resume"])
    if proc.returncode != 0:
        pytest.fail(f"resume exited {proc.returncode}:\n{resumed_log.read_text()[-6000:]}")

    # DeepSpeed's checkpoint files were read without unpickling objects
    assert "with weights_only=True" in resumed_log.read_text()

    reference, resumed = logged_losses(zero2_lora_run), logged_losses(out)
    assert sorted(resumed) == sorted(reference) == list(range(1, RESUME_STEPS + 1))
    for step in range(1, RESUME_STEPS + 1):
        assert resumed[step] == pytest.approx(reference[step], rel=LOSS_RTOL), step
    ref_eval, res_eval = logged_losses(zero2_lora_run, "eval_loss"), logged_losses(out, "eval_loss")
    assert res_eval[RESUME_STEPS] == pytest.approx(ref_eval[RESUME_STEPS], rel=LOSS_RTOL)

    manifest: Any = read_manifest(out)
    reference_manifest: Any = read_manifest(zero2_lora_run)
    assert manifest["resumed_from"] == str(out / f"checkpoint-{RESUME_EVERY}")
    assert manifest["results"]["global_step"] == RESUME_STEPS
    # the token count is restored from the checkpoint, and the resumed steps trained on
    # exactly the batches the uninterrupted run did
    assert manifest["results"]["tokens_seen"] == reference_manifest["results"]["tokens_seen"]
