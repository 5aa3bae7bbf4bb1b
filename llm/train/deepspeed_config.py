"""A DeepSpeed JSON's ``"auto"`` values filled from a recipe, for DeepSpeed driven by hand.

A DeepSpeed JSON with ``"auto"`` values only works through the HF Trainer /
accelerate, which fill them in. :func:`resolve_deepspeed_config` fills them
from the recipe by the Trainer's rules for anything else (a hand-written
loop, ``deepspeed.initialize`` in a script).
"""

from __future__ import annotations

import copy
import logging
from pathlib import Path
from typing import Any

from llm.errors import BadInputError
from llm.train.distributed import read_json_config
from llm.train.recipe import Recipe

log = logging.getLogger(__name__)

AUTO = "auto"


def _fill(node: dict[str, Any], key: str, value: Any, where: str, filled: dict[str, Any]) -> None:
    if node.get(key) == AUTO:
        node[key] = value
        filled[f"{where}{key}"] = value


def _remaining_auto(node: Any, where: str = "") -> list[str]:
    if isinstance(node, dict):
        found: list[str] = []
        for key, value in node.items():
            found += _remaining_auto(value, f"{where}{key}.")
        return found
    return [where.rstrip(".")] if node == AUTO else []


def resolve_deepspeed_config(
    path: Path,
    recipe: Recipe,
    *,
    world_size: int,
    precision: str,
    hidden_size: int | None = None,
) -> dict[str, Any]:
    """The DeepSpeed config at ``path`` with every ``"auto"`` filled from the recipe.

    The HF Trainer (and accelerate's ``prepare``) fill ``"auto"`` themselves;
    pass them the path, not this dict. Use this when DeepSpeed is driven any
    other way (``deepspeed.initialize`` in a hand-written loop, the dry run).
    Values follow the HF Trainer's rules: micro batch and accumulation from
    ``training``, ``train_batch_size = micro × accumulation × world_size``,
    ``gradient_clipping = training.max_grad_norm``, ``bf16``/``fp16`` enabled by
    ``precision``, bucket sizes from the model's hidden size (h², 0.9·h², 10·h).

    Args:
        path: DeepSpeed JSON.
        recipe: the validated recipe.
        world_size: processes over all nodes.
        precision: ``"bf16"``, ``"fp16"`` or ``"fp32"``
            (see :func:`llm.train.recipe.resolve_dtype`).
        hidden_size: the model's hidden size; needed when bucket sizes are ``"auto"``.

    Returns:
        A new dict with no ``"auto"`` left.

    Raises:
        BadInputError: the file is unreadable, or an ``"auto"`` cannot be filled
            (the message lists which and what to pass).
    """
    if precision not in {"bf16", "fp16", "fp32"}:
        raise BadInputError(f"precision must be bf16, fp16 or fp32, got {precision!r}")
    config = copy.deepcopy(read_json_config(path))
    filled: dict[str, Any] = {}
    training = recipe.training
    micro, accum = training.micro_batch_size, training.gradient_accumulation_steps
    _fill(config, "train_micro_batch_size_per_gpu", micro, "", filled)
    _fill(config, "gradient_accumulation_steps", accum, "", filled)
    _fill(config, "train_batch_size", micro * accum * world_size, "", filled)
    _fill(config, "gradient_clipping", training.max_grad_norm, "", filled)
    for name in ("bf16", "fp16"):
        if isinstance(config.get(name), dict):
            _fill(config[name], "enabled", precision == name, f"{name}.", filled)
    zero = config.get("zero_optimization")
    if isinstance(zero, dict) and hidden_size is not None:
        _fill(zero, "reduce_bucket_size", hidden_size * hidden_size, "zero_optimization.", filled)
        _fill(
            zero,
            "stage3_prefetch_bucket_size",
            int(0.9 * hidden_size * hidden_size),
            "zero_optimization.",
            filled,
        )
        _fill(
            zero,
            "stage3_param_persistence_threshold",
            10 * hidden_size,
            "zero_optimization.",
            filled,
        )
    left = _remaining_auto(config)
    if left:
        hint = " (pass hidden_size=… from the model config)" if hidden_size is None else ""
        raise BadInputError(f"{path}: cannot fill 'auto' for {', '.join(left)}{hint}")
    log.debug("filled DeepSpeed auto values from the recipe: %s", filled)
    return config
