"""Interrupt a real 2-process DeepSpeed run, ``--resume`` it, and get the same run as one
that was never interrupted: stopped cleanly after a checkpoint, and a rank killed with
SIGKILL in the middle of a later step.

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

The SIGKILL test kills rank 1 while step 4 runs (right after rank 0 logs step 3's
loss, so after ``checkpoint-2`` is complete and before ``checkpoint-4`` is begun);
the launcher then ends rank 0. It also leaves what a kill while saving leaves, a
``checkpoint-4`` without its completion marker or trainer state: the resume must
name it, set it aside, never load it, and continue from ``checkpoint-2``.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest

from llm.train.callbacks import STOP_AFTER_STEP_ENV, STOP_EXIT_CODE
from llm.train.checkpoints import COMPLETE_MARKER
from tests.train.fixtures import (
    ACCELERATE,
    LAUNCH_TIMEOUT_S,
    REPO,
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


def _descendants(pid: int) -> list[int]:
    """Every process below ``pid`` (parent ids from /proc/*/stat; the launcher starts the ranks)."""
    parents: dict[int, int] = {}
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, ValueError, IndexError):
            # "pid (comm) state ppid ...": comm may hold spaces, so split after its ")"
            parents[int(stat.parent.name)] = int(stat.read_text().rsplit(")", 1)[1].split()[1])
    found: list[int] = []
    todo = [pid]
    while todo:
        parent = todo.pop()
        children = [child for child, ppid in parents.items() if ppid == parent]
        found += children
        todo += children
    return found


def _rank_pid(launcher: int, rank: int) -> int | None:
    for pid in _descendants(launcher):
        with contextlib.suppress(OSError):
            environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
            if (
                f"RANK={rank}".encode() in environ
                and b"LOCAL_RANK=" + str(rank).encode() in environ
            ):
                return pid
    return None


def _losses_logged(log: Path) -> int:
    return log.read_text(errors="replace").count("{'loss':") if log.is_file() else 0


def test_a_rank_killed_mid_step_resumes_from_the_last_complete_checkpoint(
    training_assets: TrainingAssets,  # noqa: F811
    zero2_lora_run: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    out = tmp_path / "run"
    overrides = zero2_lora_overrides(training_assets, out)
    killed_log = tmp_path / "killed.log"
    argv = [str(ACCELERATE), "launch", "--config_file", ZERO2, "-m", "llm.train", RECIPE]
    for item in overrides:
        argv += ["--set", item]
    with killed_log.open("w") as sink:
        proc = subprocess.Popen(
            argv, cwd=REPO, env=training_env(), stdout=sink, stderr=subprocess.STDOUT
        )
        try:
            deadline = time.monotonic() + LAUNCH_TIMEOUT_S
            # rank 0 logs step 3's loss when step 3 is done: step 4 is running then
            while _losses_logged(killed_log) < RESUME_EVERY + 1:
                assert proc.poll() is None, killed_log.read_text()[-4000:]
                assert time.monotonic() < deadline, "step 3 was never logged"
                time.sleep(0.05)
            rank1 = _rank_pid(proc.pid, 1)
            assert rank1 is not None, "rank 1 not found under the launcher"
            os.kill(rank1, signal.SIGKILL)
            killed_at = sorted(p.name for p in out.glob("checkpoint-*"))
            proc.wait(timeout=120)
        finally:
            if proc.poll() is None:
                proc.kill()
    text = killed_log.read_text(errors="replace")
    assert proc.returncode != 0, text[-3000:]
    assert "Signal 9 (SIGKILL)" in text or "exitcode  : -9" in text, text[-3000:]
    # killed after checkpoint-2 was complete, before checkpoint-4 was (step 4 takes ~1 s,
    # so nearly always before it was begun; a kill that lands in its save leaves it incomplete)
    assert killed_at in (
        [f"checkpoint-{RESUME_EVERY}"],
        [f"checkpoint-{RESUME_EVERY}", f"checkpoint-{RESUME_STEPS}"],
    ), killed_at
    assert (out / f"checkpoint-{RESUME_EVERY}" / COMPLETE_MARKER).is_file()
    partial = out / f"checkpoint-{RESUME_STEPS}"
    assert not (partial / COMPLETE_MARKER).exists()
    assert not (out / "final").exists() and not (out / "manifest.json").exists()

    if not partial.exists():
        # what a kill while saving checkpoint-4 leaves: its files, no trainer state, no marker
        shutil.copytree(out / f"checkpoint-{RESUME_EVERY}", partial)
        (partial / COMPLETE_MARKER).unlink()
        (partial / "trainer_state.json").unlink()

    resumed_log = tmp_path / "resumed.log"
    proc_resumed = launch(ZERO2, RECIPE, overrides, resumed_log, args=["--resume"])
    resumed_text = resumed_log.read_text()
    if proc_resumed.returncode != 0:
        pytest.fail(f"resume exited {proc_resumed.returncode}:\n{resumed_text[-6000:]}")
    assert f"{partial} is incomplete and is not loaded (no {COMPLETE_MARKER}" in resumed_text
    assert f"resuming from checkpoint-{RESUME_EVERY} instead" in resumed_text
    assert (out / f"incomplete-checkpoint-{RESUME_STEPS}").is_dir()

    reference, resumed = logged_losses(zero2_lora_run), logged_losses(out)
    assert sorted(resumed) == sorted(reference) == list(range(1, RESUME_STEPS + 1))
    for step in range(1, RESUME_STEPS + 1):
        assert resumed[step] == pytest.approx(reference[step], rel=LOSS_RTOL), step
    ref_eval, res_eval = logged_losses(zero2_lora_run, "eval_loss"), logged_losses(out, "eval_loss")
    assert res_eval[RESUME_STEPS] == pytest.approx(ref_eval[RESUME_STEPS], rel=LOSS_RTOL)
    manifest: Any = read_manifest(out)
    assert manifest["resumed_from"] == str(out / f"checkpoint-{RESUME_EVERY}")
    reference_manifest: Any = read_manifest(zero2_lora_run)
    assert manifest["results"]["tokens_seen"] == reference_manifest["results"]["tokens_seen"]
    # the resumed run wrote checkpoint-4 afresh, complete
    assert (out / f"checkpoint-{RESUME_STEPS}" / COMPLETE_MARKER).is_file()
