"""Loading DeepSpeed checkpoints without unpickling arbitrary objects.

The HF Trainer reads its own checkpoint files (``optimizer.pt``,
``scheduler.pt``, ``rng_state_*.pth``) with ``torch.load(weights_only=True)``.
DeepSpeed 0.19 does not: its ``TorchCheckpointEngine.load`` calls
``torch.load(..., weights_only=False)`` on ``mp_rank_*_model_states.pt`` and
``zero_pp_rank_*_optim_states.pt``, which would run any code a tampered
checkpoint carries. :func:`weights_only_deepspeed_checkpoints` swaps that one
method for a ``weights_only=True`` load that allows exactly the DeepSpeed
classes its checkpoints hold (:func:`~llm.models.safe_loading.deepspeed_checkpoint_globals`,
the list the export shares). Anything else in a checkpoint is refused.
"""

from __future__ import annotations

import contextlib
import logging
import pickle
from collections.abc import Iterator
from typing import Any

import torch

from llm.errors import BadInputError
from llm.models.safe_loading import deepspeed_checkpoint_globals

log = logging.getLogger(__name__)


@contextlib.contextmanager
def weights_only_deepspeed_checkpoints() -> Iterator[None]:
    """Within the block, DeepSpeed reads checkpoints with ``weights_only=True``.

    Raises:
        BadInputError: (inside the block) a checkpoint file holds an object outside
            the allowlist; it is not loaded.
    """
    from deepspeed.runtime.checkpoint_engine.torch_checkpoint_engine import (
        TorchCheckpointEngine,
    )

    allowed = deepspeed_checkpoint_globals()
    original = TorchCheckpointEngine.load

    def load(self: Any, path: str, map_location: Any = None) -> Any:
        try:
            with torch.serialization.safe_globals(allowed):
                state = torch.load(path, map_location=map_location, weights_only=True)
        except pickle.UnpicklingError as exc:
            raise BadInputError(
                f"{path}: the checkpoint holds a Python object outside the allowlist of "
                f"DeepSpeed classes, so it is not unpickled: {str(exc).splitlines()[0]}"
            ) from None
        log.info("read DeepSpeed checkpoint %s with weights_only=True", path)
        return state

    TorchCheckpointEngine.load = load
    try:
        yield
    finally:
        TorchCheckpointEngine.load = original
