"""Fine-tuning: recipes, DeepSpeed/accelerate glue, data collation, the training loop.

* :mod:`llm.train.recipe`: the recipe schema and :func:`load_recipe` (defaults <
  YAML < ``--set`` overrides).
* :mod:`llm.train.distributed`: world-size guard, launch configs, DeepSpeed "auto" values.
* :mod:`llm.train.dry_run`: parameter counts and memory estimates without weights.
* :func:`run_training` (``llm.train.trainer``): the training loop.

Names are resolved on first use so that ``import llm.train.<module>`` stays
cheap and a missing optional part fails only where it is used.
"""

from __future__ import annotations

import importlib
from typing import Any

_LAZY = {
    "Recipe": "llm.train.recipe",
    "load_recipe": "llm.train.recipe",
    "RecipeError": "llm.train.recipe_checks",
    "check_world_size": "llm.train.distributed",
    "dry_run": "llm.train.dry_run",
    "run_training": "llm.train.trainer",
}

__all__ = sorted(_LAZY)


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'llm.train' has no attribute {name!r}")
    return getattr(importlib.import_module(module), name)
