"""Zero weights that must stay zero: the recovery fine-tune of a pruned model.

A pruned model (``clinical-llm compress make --method prune-*``) is a dense folder whose
linear layers hold exact zeros. A recovery fine-tune must keep them zero, or the model it
gives back is dense again and the sparsity the report judged is gone:

* a full fine-tune masks the gradients of those weights (:func:`keep_zeros_in_training`):
  Adam's moments of a weight whose every gradient is zero stay zero, so its update and its
  (decoupled) weight decay are zero too, and the weight stays exactly 0;
* a LoRA fine-tune leaves the base frozen, but merging the adapter adds a dense low-rank
  delta; :func:`apply_zero_masks` sets the pruned positions back to zero after the merge
  and says how much of the delta that kept.

A mask is ``weight != 0`` of every ``nn.Linear`` that has zeros; a dense layer (no exact
zero, as in any trained model) gets none and is left alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch


def zero_masks(model: Any) -> dict[str, torch.Tensor]:
    """``weight != 0`` of each ``nn.Linear`` of ``model`` that holds zeros, by module name."""
    masks: dict[str, torch.Tensor] = {}
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, torch.nn.Linear):
                kept = module.weight != 0
                if not bool(kept.all()):
                    masks[name] = kept
    return masks


def zero_count(masks: dict[str, torch.Tensor]) -> int:
    """How many weights the masks hold at zero."""
    return sum(int((~mask).sum()) for mask in masks.values())


def keep_zeros_in_training(model: Any) -> dict[str, torch.Tensor]:
    """Mask the gradients of ``model``'s zero linear weights, so training leaves them zero.

    A hook on each weight tensor multiplies its gradient by the mask before the gradient is
    accumulated, so whatever reads ``.grad`` afterwards (the optimizer, DeepSpeed ZeRO-1/2's
    reduction hooks, gradient clipping) sees zeros there. The weights must be whole tensors
    in this process: under DeepSpeed ZeRO-3 they are partitioned and this cannot work.

    Returns:
        The masks hooked, by module name (empty for a dense model).
    """
    masks = zero_masks(model)
    modules = dict(model.named_modules())
    for name, mask in masks.items():
        weight = modules[name].weight
        # cast once here, not in every backward pass (.to() is a no-op on the same dtype)
        keep = mask.to(weight.dtype)
        weight.register_hook(lambda grad, keep=keep: grad * keep.to(grad.dtype))
    return masks


@dataclass(frozen=True)
class MaskResult:
    """What :func:`apply_zero_masks` did.

    Attributes:
        layers: linear layers masked.
        zeros: weights set (or kept) at zero.
        moved: of those, how many the fine-tune had moved away from zero.
        delta_kept: share of the fine-tune's change (its L2 norm over the masked layers) that
            survives the mask: 1.0 when the fine-tune kept the zeros itself (full fine-tune
            with masked gradients), lower for a merged LoRA delta.
    """

    layers: int
    zeros: int
    moved: int
    delta_kept: float


def apply_zero_masks(
    model: Any, masks: dict[str, torch.Tensor], base: dict[str, torch.Tensor]
) -> MaskResult:
    """Set the masked weights of ``model`` back to zero, in place.

    Args:
        model: the fine-tuned model (a merged LoRA or a full fine-tune of the pruned model).
        masks: :func:`zero_masks` of the pruned model, by module name.
        base: the pruned model's weights of those modules, by module name (for the delta).

    Raises:
        ValueError: a masked module is missing from ``model`` or has another shape.
    """
    modules = dict(model.named_modules())
    moved = 0
    delta_sq = 0.0
    kept_sq = 0.0
    with torch.no_grad():
        for name, mask in masks.items():
            module = modules.get(name)
            if module is None or tuple(module.weight.shape) != tuple(mask.shape):
                raise ValueError(
                    f"{name}: the fine-tuned model has no weight of shape {tuple(mask.shape)}"
                )
            weight = module.weight
            delta = weight.float() - base[name].float()
            delta_sq += float(delta.pow(2).sum())
            kept_sq += float((delta * mask).pow(2).sum())
            moved += int(((weight != 0) & ~mask.to(weight.device)).sum())
            weight.mul_(mask.to(device=weight.device, dtype=weight.dtype))
    return MaskResult(
        layers=len(masks),
        zeros=zero_count(masks),
        moved=moved,
        delta_kept=1.0 if delta_sq == 0 else round((kept_sq / delta_sq) ** 0.5, 6),
    )
