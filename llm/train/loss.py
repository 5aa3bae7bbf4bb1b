"""Causal-LM loss that runs the output head only where a token has a target.

With assistant-only loss a clinical example is ~600 prompt tokens and 2-5
answer tokens, yet the standard path multiplies every position's hidden state
by the output head (``hidden x vocab``), casts all the logits to float32 and
takes a log-softmax over the vocabulary for each of them, only for the loss to
throw all but a handful away. This module keeps the positions whose *next*
token has a label (:func:`target_positions`), passes them to the model as
``logits_to_keep`` (a 1-D index tensor, supported by every transformers
causal LM and LLaVA), and computes the same cross-entropy on those logits
alone (:func:`targeted_causal_lm_loss`).

The loss equals transformers' ``ForCausalLMLoss`` on the full logits: the
same shifted targets, a sum over target tokens divided by
``num_items_in_batch`` when the Trainer passes it (gradient accumulation and
multi-process token averaging stay exact), a mean otherwise.
``tests/train/test_loss.py`` checks the loss and the gradients against the
full path. The memory saved matters most for real models: Llama-3's 128k
vocabulary makes the float32 logits of one 4,096-token row 2 GB.
"""

from __future__ import annotations

import inspect
from typing import Any

import torch
import torch.nn.functional as F

from llm.models.chat_tokenize import IGNORE_INDEX

LOGITS_TO_KEEP = "logits_to_keep"


def target_positions(labels: torch.Tensor) -> torch.Tensor:
    """Positions ``t`` at which some row's token ``t + 1`` has a label.

    Args:
        labels: ``(rows, length)`` labels, :data:`IGNORE_INDEX` where no loss is taken.

    Returns:
        A sorted 1-D ``long`` tensor of positions (the union over rows), on the
        labels' device; empty when the batch has no target at all.
    """
    has_target = (labels[:, 1:] != IGNORE_INDEX).any(dim=0)
    return has_target.nonzero().reshape(-1)


def targeted_causal_lm_loss(
    outputs: Any, labels: torch.Tensor, num_items_in_batch: torch.Tensor | int | None = None
) -> torch.Tensor:
    """Cross-entropy of logits computed at :func:`target_positions` of ``labels``.

    Args:
        outputs: the model's output; ``outputs.logits`` is ``(rows, kept, vocab)``
            for the positions :func:`target_positions` returns for ``labels``.
        labels: the batch's ``(rows, length)`` labels (not shifted).
        num_items_in_batch: target tokens in the whole accumulated batch (the
            Trainer's count); None: the mean over this batch's targets.

    Returns:
        A scalar loss.

    Raises:
        ValueError: the logits were not computed at those positions.
    """
    logits = outputs["logits"] if isinstance(outputs, dict) else outputs.logits
    positions = target_positions(labels)
    if logits.shape[1] != positions.numel():
        raise ValueError(
            f"logits hold {logits.shape[1]} positions but the labels have targets after "
            f"{positions.numel()}: pass logits_to_keep=target_positions(labels) to the model"
        )
    targets = labels[:, positions + 1].to(logits.device)
    loss = F.cross_entropy(
        logits.float().reshape(-1, logits.shape[-1]),
        targets.reshape(-1),
        ignore_index=IGNORE_INDEX,
        reduction="sum",
    )
    if num_items_in_batch is None:
        return loss / (targets != IGNORE_INDEX).sum().clamp(min=1)
    if isinstance(num_items_in_batch, torch.Tensor):
        num_items_in_batch = num_items_in_batch.to(loss.device)
    return loss / num_items_in_batch


def accepts_logits_to_keep(model: Any) -> bool:
    """Whether ``model`` (a transformers or peft model) takes ``logits_to_keep``."""
    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    return LOGITS_TO_KEEP in inspect.signature(base.forward).parameters
