"""Consolidating a DeepSpeed ZeRO checkpoint's shards into one safetensors model.

A ZeRO-3 checkpoint saved without ``stage3_gather_16bit_weights_on_model_save``
holds no model weights, only each process's partition of the fp32 master
weights inside DeepSpeed's ``global_stepN/zero_pp_rank_*_{model,optim}_states.pt``.
DeepSpeed's own :mod:`deepspeed.utils.zero_to_fp32` stitches them back together;
this module calls it and writes the result with ``save_pretrained`` (safetensors).

**The one place this project reads pickle files, and why it is allowed.**
Those shard files are ``torch.save`` pickles that the training run wrote
itself; they are not third-party downloads, and there is no other copy of the
weights. Even so, they are read only when the user asks for it
(``clinical-llm export --allow-deepspeed-shards``), only in the export worker
process, and never with full unpickling: DeepSpeed 0.19.8 calls
``torch.load(..., weights_only=False)`` and offers no switch, so the worker
runs with ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` (torch then loads every file with
``weights_only=True``, overriding the call site) and allows exactly the
DeepSpeed classes these checkpoints hold (the allowlist training's resume
uses too, :mod:`llm.models.safe_loading`). Anything else in a shard is refused.
"""

from __future__ import annotations

import contextlib
import logging
import os
import pickle
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from llm.errors import BadInputError
from llm.models.safe_loading import deepspeed_checkpoint_globals

log = logging.getLogger(__name__)

FORCE_WEIGHTS_ONLY_ENV = "TORCH_FORCE_WEIGHTS_ONLY_LOAD"


@contextlib.contextmanager
def weights_only_shards() -> Iterator[None]:
    """Within the block every ``torch.load`` is ``weights_only=True`` with DeepSpeed's classes.

    Raises:
        BadInputError: (inside the block) a shard holds an object outside the allowlist.
    """
    previous = os.environ.get(FORCE_WEIGHTS_ONLY_ENV)
    os.environ[FORCE_WEIGHTS_ONLY_ENV] = "1"
    try:
        with torch.serialization.safe_globals(deepspeed_checkpoint_globals()):
            yield
    except pickle.UnpicklingError as exc:
        raise BadInputError(
            "a DeepSpeed shard holds a Python object outside the allowlist of DeepSpeed "
            f"classes, so it is not unpickled: {str(exc).splitlines()[0]}"
        ) from None
    finally:
        if previous is None:
            os.environ.pop(FORCE_WEIGHTS_ONLY_ENV, None)
        else:
            os.environ[FORCE_WEIGHTS_ONLY_ENV] = previous


def zero_state_dict(checkpoint: Path) -> dict[str, torch.Tensor]:
    """The fp32 state dict of a ZeRO-2/3 checkpoint folder (``checkpoint-N``).

    Args:
        checkpoint: the folder holding ``latest`` and ``global_stepN/``.

    Returns:
        Parameter name -> full tensor; tied parameters (``lm_head.weight`` of a model
        with tied embeddings) map to the same tensor as the one they share.

    Raises:
        BadInputError: shards missing (fewer files than processes) or holding
            objects outside the allowlist.
    """
    from deepspeed.utils.zero_to_fp32 import get_fp32_state_dict_from_zero_checkpoint

    try:
        with weights_only_shards():
            state: dict[str, torch.Tensor] = get_fp32_state_dict_from_zero_checkpoint(
                str(checkpoint)
            )
    except (ValueError, FileNotFoundError) as exc:
        raise BadInputError(f"{checkpoint}: cannot consolidate the ZeRO shards: {exc}") from None
    return state


def _model_class(multimodal: bool) -> Any:
    from transformers import AutoModelForCausalLM, AutoModelForImageTextToText

    return AutoModelForImageTextToText if multimodal else AutoModelForCausalLM


def consolidate_zero_checkpoint(
    checkpoint: Path, out: Path, *, dtype: torch.dtype, multimodal: bool
) -> dict[str, Any]:
    """Write the model of a ZeRO checkpoint to ``out`` as safetensors (+ config).

    Args:
        checkpoint: ``checkpoint-N`` with ``config.json``, ``latest`` and the shards.
        out: folder to write ``config.json``, ``generation_config.json`` and
            ``model*.safetensors`` into.
        dtype: dtype of the written weights.
        multimodal: the checkpoint is a vision-language model.

    Returns:
        ``{"parameters": total elements, "tensors": count, "tied": [names]}``.

    Raises:
        BadInputError: the shards do not cover every weight of ``config.json``'s model,
            or hold weights it does not have.
    """
    from transformers import AutoConfig

    state = zero_state_dict(checkpoint)
    config = AutoConfig.from_pretrained(checkpoint, local_files_only=True, trust_remote_code=False)
    # on the meta device: no memory for random weights that are replaced at once
    with torch.device("meta"):
        model = _model_class(multimodal).from_config(config, trust_remote_code=False)
    result = model.load_state_dict(state, strict=False, assign=True)
    model.tie_weights()
    on_meta = sorted(n for n, p in model.named_parameters(remove_duplicate=False) if p.is_meta)
    if on_meta or result.unexpected_keys:
        raise BadInputError(
            f"{checkpoint}: the ZeRO shards do not match config.json: "
            f"{len(on_meta)} weight(s) missing ({', '.join(on_meta[:5])}), "
            f"{len(result.unexpected_keys)} unexpected ({', '.join(result.unexpected_keys[:5])})"
        )
    tied = sorted(
        name
        for name, p in model.named_parameters(remove_duplicate=False)
        if name not in dict(model.named_parameters())
    )
    model.to(dtype)
    model.save_pretrained(str(out))
    log.info("consolidated %d tensors from %s (tied: %s)", len(state), checkpoint, tied)
    return {
        "parameters": sum(p.numel() for p in model.parameters()),
        "tensors": len(state),
        "tied": tied,
    }
