"""What one training run did: the value :func:`llm.train.trainer.run_training` returns.

Kept apart from the trainer so that the run manifest
(:mod:`llm.train.run_manifest`), which records it, does not import the
training loop.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class TrainingResult:
    """What one call of :func:`~llm.train.trainer.run_training` did.

    Attributes:
        output_dir: the run folder.
        final_dir: the saved adapter or model (``output_dir/final``).
        manifest_path: ``output_dir/manifest.json`` (written by the main process).
        world_size: processes that trained.
        global_step: optimizer steps done, resumed ones included.
        train_loss: mean training loss of this session (HF's ``train_loss``).
        eval_loss: loss on the eval split after training (None without one).
        tokens_seen: real (non-pad) tokens trained on, all processes, resumed part included.
        tokens_per_second: real tokens per second of this session.
        resumed_from: the checkpoint this session started from, if any.
        log_history: the Trainer's log entries (loss, learning rate, eval loss per step).
    """

    output_dir: Path
    final_dir: Path
    manifest_path: Path
    world_size: int
    global_step: int
    train_loss: float | None
    eval_loss: float | None
    tokens_seen: int
    tokens_per_second: float
    resumed_from: Path | None = None
    log_history: list[dict[str, Any]] = field(default_factory=list)

    def __str__(self) -> str:
        return str(self.output_dir)
