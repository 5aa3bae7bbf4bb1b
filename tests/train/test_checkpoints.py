"""Complete and incomplete checkpoints: the marker, what resume loads, skips and refuses,
failed saves (unwritable output folders: tests/test_files.py).

The checkpoints here are laid out as the Trainer writes them under DeepSpeed
(safetensors adapter, per-rank files in ``global_stepN/``, ``trainer_state.json``),
with real safetensors files; the damage done to them is what a kill or a full disk
leaves: a missing marker, a missing or truncated file, a missing trainer state.
The last section saves real checkpoints with the HF Trainer (one process, a tiny
Llama) and makes the disk "full" while one is written.
"""

from __future__ import annotations

import errno
import json
import logging
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file

from llm.errors import BadInputError
from llm.train.checkpoints import (
    COMPLETE_MARKER,
    CheckpointSaveError,
    checkpoint_problem,
    last_complete_checkpoint,
    set_aside,
    write_complete_marker,
)
from llm.train.trainer import resume_checkpoint, set_aside_incomplete

ADAPTER = "adapter_model.safetensors"


def make_checkpoint(output_dir: Path, step: int, *, complete: bool = True) -> Path:
    """A ``checkpoint-<step>`` laid out as the Trainer + DeepSpeed write it."""
    checkpoint = output_dir / f"checkpoint-{step}"
    (checkpoint / f"global_step{step}").mkdir(parents=True)
    save_file({"w": torch.arange(64, dtype=torch.float32).reshape(8, 8)}, checkpoint / ADAPTER)
    for rank in (0, 1):
        (checkpoint / f"rng_state_{rank}.pth").write_bytes(b"r" * 100)
        name = f"global_step{step}/zero_pp_rank_{rank}_mp_rank_00_optim_states.pt"
        (checkpoint / name).write_bytes(b"o" * 300)
    (checkpoint / "latest").write_text(f"global_step{step}")
    (checkpoint / "trainer_state.json").write_text(json.dumps({"global_step": step}))
    if complete:
        write_complete_marker(checkpoint)
    return checkpoint


# ---------------------------------------------------------------- the marker


def test_a_marked_checkpoint_is_complete_and_lists_every_file_with_its_size(
    tmp_path: Path,
) -> None:
    checkpoint = make_checkpoint(tmp_path, 2)
    assert checkpoint_problem(checkpoint) is None
    files = json.loads((checkpoint / COMPLETE_MARKER).read_text())["files"]
    assert files["global_step2/zero_pp_rank_1_mp_rank_00_optim_states.pt"] == 300
    assert files[ADAPTER] == (checkpoint / ADAPTER).stat().st_size
    assert not list(checkpoint.glob(".*partial"))


def _truncate(path: Path, keep: int) -> None:
    path.write_bytes(path.read_bytes()[:keep])


def _corrupt_header(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[8] = ord("[")  # same length, the header is no longer a JSON object
    path.write_bytes(bytes(data))


DAMAGE = {
    "no marker": (lambda c: (c / COMPLETE_MARKER).unlink(), f"no {COMPLETE_MARKER}"),
    "trainer state missing": (
        lambda c: (c / "trainer_state.json").unlink(), "trainer_state.json is missing"
    ),
    "rank 1's optimizer missing": (
        lambda c: (c / "global_step2/zero_pp_rank_1_mp_rank_00_optim_states.pt").unlink(),
        "zero_pp_rank_1_mp_rank_00_optim_states.pt is missing",
    ),
    "truncated safetensors": (lambda c: _truncate(c / ADAPTER, 100), f"{ADAPTER} is 100 bytes"),
    "safetensors header damaged": (lambda c: _corrupt_header(c / ADAPTER), ADAPTER),
    "marker truncated": (lambda c: _truncate(c / COMPLETE_MARKER, 20), "unreadable"),
    "trainer state not JSON": (
        lambda c: (c / "trainer_state.json").write_text("x" * len('{"global_step": 2}')),
        "trainer_state.json is not valid JSON",
    ),
}  # fmt: skip


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_damage_a_kill_or_full_disk_leaves_is_named(tmp_path: Path, damage: str) -> None:
    checkpoint = make_checkpoint(tmp_path, 2)
    harm, named = DAMAGE[damage]
    harm(checkpoint)
    problem = checkpoint_problem(checkpoint)
    assert problem is not None and named in problem, problem


# ---------------------------------------------------------------- what resume loads


def test_resume_picks_the_newest_complete_checkpoint_by_step(tmp_path: Path) -> None:
    for step in (3, 10, 9):
        make_checkpoint(tmp_path, step)
    assert resume_checkpoint(tmp_path, True) == tmp_path / "checkpoint-10"


def test_resume_skips_a_newer_incomplete_checkpoint_names_it_and_sets_it_aside(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    make_checkpoint(tmp_path, 2)
    newer = make_checkpoint(tmp_path, 4)
    _truncate(newer / ADAPTER, 50)
    make_checkpoint(tmp_path, 6, complete=False)
    with caplog.at_level(logging.WARNING, logger="llm.train.checkpoints"):
        chosen = resume_checkpoint(tmp_path, True)
        set_aside_incomplete(tmp_path, chosen)  # type: ignore[arg-type]
    assert chosen == tmp_path / "checkpoint-2"
    text = caplog.text
    assert f"{newer} is incomplete and is not loaded ({ADAPTER} is 50 bytes" in text
    assert f"checkpoint-6 is incomplete and is not loaded (no {COMPLETE_MARKER}" in text
    assert "resuming from checkpoint-2 instead" in text
    # moved out of the Trainer's `checkpoint-*` names, nothing deleted
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "checkpoint-2",
        "incomplete-checkpoint-4",
        "incomplete-checkpoint-6",
    ]
    assert (tmp_path / "incomplete-checkpoint-4" / "trainer_state.json").is_file()
    assert "moved to" in caplog.text


def test_resume_with_no_complete_checkpoint_names_each_and_loads_none(tmp_path: Path) -> None:
    make_checkpoint(tmp_path, 2, complete=False)
    (make_checkpoint(tmp_path, 4) / "trainer_state.json").unlink()
    with pytest.raises(BadInputError) as err:
        resume_checkpoint(tmp_path, True)
    message = str(err.value)
    assert f"no complete checkpoint in {tmp_path}" in message
    assert f"checkpoint-2: no {COMPLETE_MARKER}" in message
    assert "checkpoint-4: trainer_state.json is missing" in message


def test_resume_without_checkpoint_and_fresh_run_over_checkpoints_are_refused(
    tmp_path: Path,
) -> None:
    assert resume_checkpoint(tmp_path / "new", False) is None
    assert resume_checkpoint(tmp_path, False) is None
    with pytest.raises(BadInputError, match="no checkpoint-N folder"):
        resume_checkpoint(tmp_path, True)
    make_checkpoint(tmp_path, 4, complete=False)  # even an incomplete one: never mix two runs
    with pytest.raises(BadInputError, match=r"already holds checkpoints.*--resume"):
        resume_checkpoint(tmp_path, False)


def test_set_aside_never_overwrites_an_earlier_one(tmp_path: Path) -> None:
    first = set_aside(make_checkpoint(tmp_path, 4, complete=False))
    second = set_aside(make_checkpoint(tmp_path, 4, complete=False))
    assert (first.name, second.name) == ("incomplete-checkpoint-4", "incomplete-checkpoint-4.2")
    assert last_complete_checkpoint(tmp_path) is None


# ---------------------------------------------------------------- real saves, a full disk


def _trainer(output_dir: Path, **kwargs: Any) -> Any:
    from transformers import LlamaConfig, LlamaForCausalLM, TrainingArguments

    from llm.train.callbacks import RecipeTrainer

    torch.manual_seed(0)
    config = LlamaConfig(
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        num_key_value_heads=1,
        intermediate_size=64,
        vocab_size=64,
    )
    rows = [{"input_ids": list(range(i, i + 8)), "labels": list(range(i, i + 8))} for i in range(8)]
    args = TrainingArguments(
        output_dir=str(output_dir),
        max_steps=3,
        save_strategy="steps",
        save_steps=1,
        per_device_train_batch_size=2,
        report_to=[],
        use_cpu=True,
        **kwargs,
    )
    return RecipeTrainer(model=LlamaForCausalLM(config), args=args, train_dataset=rows)


def test_every_saved_checkpoint_is_marked_complete_and_rotation_keeps_the_limit(
    tmp_path: Path,
) -> None:
    _trainer(tmp_path, save_total_limit=2).train()
    assert sorted(p.name for p in tmp_path.glob("checkpoint-*")) == ["checkpoint-2", "checkpoint-3"]
    for checkpoint in tmp_path.glob("checkpoint-*"):
        assert checkpoint_problem(checkpoint) is None, checkpoint
    assert resume_checkpoint(tmp_path, True) == tmp_path / "checkpoint-3"


def test_a_full_disk_while_saving_names_the_checkpoint_and_keeps_the_earlier_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import transformers.trainer

    real_save = torch.save

    def full_disk_at_step_2(obj: Any, f: Any, *args: Any, **kwargs: Any) -> Any:
        if "checkpoint-2" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device", str(f))
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(transformers.trainer.torch, "save", full_disk_at_step_2)
    with pytest.raises(CheckpointSaveError) as err:
        _trainer(tmp_path, save_total_limit=1).train()
    message = str(err.value)
    assert f"{tmp_path / 'checkpoint-2'}: saving failed: No space left on device" in message
    assert "MiB free there" in message
    assert f"the last complete checkpoint, {tmp_path / 'checkpoint-1'}, is intact" in message
    assert checkpoint_problem(tmp_path / "checkpoint-1") is None
    assert "no " + COMPLETE_MARKER in (checkpoint_problem(tmp_path / "checkpoint-2") or "")
    assert resume_checkpoint(tmp_path, True) == tmp_path / "checkpoint-1"
