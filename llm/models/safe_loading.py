"""The allowlist for reading DeepSpeed checkpoints with ``torch.load(weights_only=True)``.

DeepSpeed 0.19 reads its own checkpoint files (``mp_rank_*_model_states.pt``,
``zero_pp_rank_*_optim_states.pt``) with ``torch.load(..., weights_only=False)``,
which would run any code a tampered checkpoint carries. Both places that read
those files load them with ``weights_only=True`` instead and allow exactly the
DeepSpeed classes the files hold (found by loading real ZeRO-2 and ZeRO-3
checkpoints): training's resume and the export's consolidation of ZeRO
shards. One list, so the two cannot drift apart.
"""

from __future__ import annotations

from typing import Any


def deepspeed_checkpoint_globals() -> list[Any]:
    """The DeepSpeed classes a ZeRO-2/3 checkpoint may hold (for ``safe_globals``).

    Returns:
        The loss scalers and their config, the ZeRO stage enum and the fragment
        addresses of partitioned optimizer states. Anything else in a checkpoint
        file is refused by a ``weights_only`` load.
    """
    from deepspeed.runtime.fp16.loss_scaler import (
        DynamicLossScaler,
        LossScaleConfig,
        LossScaleProfile,
        LossScaler,
    )
    from deepspeed.runtime.zero.config import ZeroStageEnum
    from deepspeed.utils.tensor_fragment import fragment_address

    return [
        LossScaler,
        DynamicLossScaler,
        LossScaleConfig,
        LossScaleProfile,
        ZeroStageEnum,
        fragment_address,
    ]
