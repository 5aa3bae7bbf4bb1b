"""The pieces the HF Trainer is extended with: real-token counting and a fault switch.

* :class:`TokenCountingCollator` wraps a project collator so every batch says
  how many of its tokens are real (padding excluded). Packed batches carry no
  attention mask, and a real checkpoint may pad with its eos token, so neither
  the mask nor ``input_ids != pad`` can count them; the collator knows.
* :class:`RecipeTrainer` adds those counts, summed over processes, to
  ``TrainerState.num_input_tokens_seen`` (saved in every checkpoint, so a
  resumed run keeps counting) and logs them with the loss. With
  ``sparse_logits`` it runs the output head only where a token has a target
  (:mod:`llm.train.loss`).
* :class:`RecipeTrainer` also marks each checkpoint complete once every rank has
  written it, and only then rotates old ones away (:mod:`llm.train.checkpoints`);
  a save that fails names the checkpoint and the last complete one.
* :class:`StopAfterCheckpoint` ends the process right after checkpoint *k* is
  written when ``CLINICAL_LLM_STOP_AFTER_STEP=k`` is set: an interruption at a
  known point, to prove that ``--resume`` continues exactly where it stopped.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
from transformers import Trainer, TrainerCallback

from llm.errors import BadInputError
from llm.train.checkpoints import last_complete_checkpoint, save_failure, write_complete_marker
from llm.train.loss import LOGITS_TO_KEEP, target_positions, targeted_causal_lm_loss

log = logging.getLogger(__name__)

NUM_REAL_TOKENS = "num_real_tokens"
STOP_AFTER_STEP_ENV = "CLINICAL_LLM_STOP_AFTER_STEP"
STOP_EXIT_CODE = 75  # EX_TEMPFAIL: interrupted on purpose, resume to finish


class TokenCountingCollator:
    """A project collator whose batches also carry their real-token count.

    Args:
        collator: a :class:`~llm.train.packing.PackedCollator` or
            :class:`~llm.train.packing.PaddedCollator` (anything with ``collate``
            returning a batch with ``model_inputs()`` and ``num_real_tokens``).
    """

    def __init__(self, collator: Any) -> None:
        self.collator = collator

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Model inputs plus :data:`NUM_REAL_TOKENS` (popped again before the forward pass)."""
        batch = self.collator.collate(features)
        inputs: dict[str, Any] = batch.model_inputs()
        inputs[NUM_REAL_TOKENS] = torch.tensor(batch.num_real_tokens, dtype=torch.long)
        return inputs


class RecipeTrainer(Trainer):
    """``transformers.Trainer`` that counts real tokens and logs them with the loss.

    Args:
        sparse_logits: compute logits only at positions whose next token has a
            label and take the loss there (:func:`~llm.train.loss.targeted_causal_lm_loss`);
            the model must accept ``logits_to_keep``.
        **kwargs: ``transformers.Trainer`` arguments.
    """

    _session_tokens_start: int = 0
    _session_started: float | None = None

    def __init__(self, *args: Any, sparse_logits: bool = False, **kwargs: Any) -> None:
        if sparse_logits:
            kwargs["compute_loss_func"] = targeted_causal_lm_loss
        super().__init__(*args, **kwargs)
        self.sparse_logits = sparse_logits

    def compute_loss(
        self,
        model: Any,
        inputs: dict[str, Any],
        return_outputs: bool = False,
        num_items_in_batch: Any = None,
    ) -> Any:
        """The Trainer's loss; training batches add their real tokens to the state."""
        real = inputs.pop(NUM_REAL_TOKENS, None)
        if real is not None and model.training:
            count = torch.as_tensor(real, device=self.args.device, dtype=torch.long).reshape(1)
            if self._session_started is None:
                self._session_started = time.perf_counter()
                self._session_tokens_start = self.state.num_input_tokens_seen
            self.state.num_input_tokens_seen += int(self.accelerator.gather(count).sum().item())
        if self.sparse_logits and "labels" in inputs:
            inputs[LOGITS_TO_KEEP] = target_positions(inputs["labels"])
        return super().compute_loss(
            model, inputs, return_outputs=return_outputs, num_items_in_batch=num_items_in_batch
        )

    @property
    def session_tokens(self) -> int:
        """Real tokens trained on in this process's session (all ranks, resumed part excluded)."""
        if self._session_started is None:
            return 0
        return self.state.num_input_tokens_seen - self._session_tokens_start

    def _save_checkpoint(self, model: Any, trial: Any) -> None:
        """Save ``checkpoint-N`` as the Trainer does, mark it complete, then rotate.

        The Trainer would delete old checkpoints (``save_total_limit``) as soon as
        rank 0 has written its part, while other ranks may still be writing theirs:
        a kill then could leave no complete checkpoint at all. Here rotation waits
        until every rank is done and the marker is written.

        Raises:
            CheckpointSaveError: any rank's write failed (full disk, unwritable
                folder); names the checkpoint, the cause, the free space and the
                last complete checkpoint, which is left as it was.
        """
        from transformers.trainer_utils import PREFIX_CHECKPOINT_DIR, rotate_checkpoints

        run_dir = Path(self._get_output_dir(trial=trial))
        step = self.state.global_step
        checkpoint = run_dir / f"{PREFIX_CHECKPOINT_DIR}-{step}"
        limit = self.args.save_total_limit
        self.args.save_total_limit = None  # no rotation inside the Trainer's save
        try:
            super()._save_checkpoint(model, trial)
        except Exception as exc:
            raise save_failure(
                checkpoint, exc, last_complete_checkpoint(run_dir, below=step)
            ) from exc
        finally:
            self.args.save_total_limit = limit
        self.accelerator.wait_for_everyone()  # every rank's optimizer and RNG files are written
        if self.args.should_save:
            write_complete_marker(checkpoint)
            rotate_checkpoints(
                output_dir=str(run_dir),
                save_total_limit=limit,
                best_model_checkpoint=self.state.best_model_checkpoint,
                use_mtime=True,
            )

    def log(self, logs: dict[str, float], start_time: float | None = None) -> None:
        """Log as the Trainer does, adding real tokens seen (and their rate) to training logs."""
        if "loss" in logs:
            logs["num_input_tokens_seen"] = self.state.num_input_tokens_seen
            if self._session_started is not None:
                elapsed = time.perf_counter() - self._session_started
                if elapsed > 0:
                    logs["train_real_tokens_per_second"] = round(self.session_tokens / elapsed, 2)
        super().log(logs, start_time)


def stop_after_step() -> int | None:
    """The step ``CLINICAL_LLM_STOP_AFTER_STEP`` asks to stop after, or None.

    Raises:
        BadInputError: the variable is set but is not a positive integer.
    """
    raw = os.environ.get(STOP_AFTER_STEP_ENV)
    if not raw:
        return None
    try:
        step = int(raw)
    except ValueError:
        step = 0
    if step < 1:
        raise BadInputError(f"{STOP_AFTER_STEP_ENV}={raw!r}: expected a positive step number")
    return step


class StopAfterCheckpoint(TrainerCallback):
    """Exit every process right after the checkpoint at or past ``step`` is saved.

    The exit skips the final save and the manifest on purpose: the run folder
    looks as if the machine had been preempted, and only ``--resume`` finishes it.

    Args:
        step: the optimizer step after whose checkpoint the processes exit.
    """

    def __init__(self, step: int) -> None:
        self.step = step

    def on_save(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        if state.global_step >= self.step:
            log.warning(
                "%s=%d: stopping after the checkpoint of step %d (resume with --resume)",
                STOP_AFTER_STEP_ENV,
                self.step,
                state.global_step,
            )
            import torch.distributed as dist

            # the launcher kills every process once one exits: wait until all of
            # them (rank 0 writes trainer_state.json last) have finished the checkpoint
            if dist.is_available() and dist.is_initialized():
                dist.barrier()
            logging.shutdown()
            os._exit(STOP_EXIT_CODE)
