"""Compression methods, each applied in place to a loaded causal LM by a real library.

* ``int8-dynamic``: torchao ``Int8DynamicActivationInt8WeightConfig`` (int8 weights per
  row, activations quantised per token at run time).
* ``int4-weight-only``: torchao ``IntxWeightOnlyConfig(weight_dtype=torch.int4)`` with
  per-group scales. torchao 0.18's packed int4 layouts (``Int4WeightOnlyConfig``) run on
  CUDA/XPU only; on CPU the int4 values are stored one per int8 byte
  (``IntxUnpackedToInt8Tensor``), so the file is int8-sized. The values are int4.
* ``prune-unstructured``: ``torch.nn.utils.prune.l1_unstructured`` at ``sparsity`` per
  linear layer (the smallest-magnitude weights set to zero), made permanent.
* ``prune-2:4``: torchao's ``apply_fake_sparsity`` (``WeightNormSparsifier``, 2 zeros in
  every block of 4 along the input dimension).

Every method leaves the token embeddings and the output head (``lm_head``, often tied to the
embeddings) untouched and changes only the ``nn.Linear`` layers of the decoder. Quantised
models are saved by transformers as safetensors with torchao's tensor-subclass metadata
(JSON, from an allowlist of classes; no pickle), and load back with ``from_pretrained``.
Pruned models are saved dense, so every backend loads them.

All four are data-free: nothing is calibrated, so no dataset is read.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from llm.errors import BadInputError

TORCHAO_INSTALL = "pip install 'clinical-llm[compress]'"
# the layers every method leaves alone: the output head (tied to the embeddings in small models)
KEPT_MODULES = ("lm_head",)


class Method(str, Enum):
    """What a compressed folder was made with."""

    int8_dynamic = "int8-dynamic"
    int4_weight_only = "int4-weight-only"
    prune_unstructured = "prune-unstructured"
    prune_2_4 = "prune-2:4"


QUANTIZATION_METHODS = (Method.int8_dynamic, Method.int4_weight_only)
PRUNING_METHODS = (Method.prune_unstructured, Method.prune_2_4)


class CompressionSpec(BaseModel):
    """One compression: the method and its parameters (recorded in the folder's manifest)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    method: Method = Field(description="Compression method (see llm.compress.methods).")
    sparsity: float | None = Field(
        default=None,
        gt=0.0,
        lt=1.0,
        description="Share of each linear layer's weights set to zero (prune-unstructured only).",
    )
    group_size: int = Field(
        default=32,
        ge=8,
        description="Weights sharing one scale along the input dimension (int4-weight-only).",
    )

    @model_validator(mode="after")
    def _check(self) -> CompressionSpec:
        if self.method is Method.prune_unstructured and self.sparsity is None:
            raise ValueError("prune-unstructured needs a sparsity, e.g. --sparsity 0.5")
        if self.method is not Method.prune_unstructured and self.sparsity is not None:
            raise ValueError(
                f"--sparsity applies to prune-unstructured only, not {self.method.value}"
            )
        return self

    @property
    def name(self) -> str:
        """A short name for folders and report rows, e.g. ``prune-unstructured-0.5``."""
        if self.method is Method.prune_unstructured:
            return f"{self.method.value}-{self.sparsity:g}"
        if self.method is Method.int4_weight_only:
            return f"{self.method.value}-g{self.group_size}"
        return self.method.value.replace(":", "-")

    @property
    def quantizes(self) -> bool:
        """Whether the method quantises (the model is loaded with a torchao config)."""
        return self.method in QUANTIZATION_METHODS


def _torchao() -> Any:
    try:
        import torchao.quantization as quantization
    except ImportError as exc:
        raise BadInputError(f"torchao is not installed: {TORCHAO_INSTALL}") from exc
    return quantization


def torchao_config(spec: CompressionSpec) -> Any:
    """The transformers ``TorchAoConfig`` that quantises a model as ``spec`` says.

    Raises:
        BadInputError: torchao is missing; ``spec`` does not quantise.
    """
    from transformers import TorchAoConfig

    quantization = _torchao()
    if spec.method is Method.int8_dynamic:
        config = quantization.Int8DynamicActivationInt8WeightConfig()
    elif spec.method is Method.int4_weight_only:
        import torch
        from torchao.quantization.granularity import PerGroup

        config = quantization.IntxWeightOnlyConfig(
            weight_dtype=torch.int4,  # type: ignore[attr-defined]
            granularity=PerGroup(spec.group_size),
        )
    else:
        raise BadInputError(f"{spec.method.value} does not quantise")
    return TorchAoConfig(config, modules_to_not_convert=list(KEPT_MODULES))


def decoder_linears(model: Any) -> list[tuple[str, Any]]:
    """The ``nn.Linear`` layers every method changes: all but the output head."""
    import torch

    return [
        (name, module)
        for name, module in model.named_modules()
        if isinstance(module, torch.nn.Linear) and name.rsplit(".", 1)[-1] not in KEPT_MODULES
    ]


def prune(model: Any, spec: CompressionSpec) -> dict[str, Any]:
    """Prune ``model``'s decoder linear layers in place; the zeros are made permanent.

    Args:
        model: a loaded causal LM.
        spec: a pruning spec (``prune-unstructured`` or ``prune-2:4``).

    Returns:
        What was done: layers pruned and the share of their weights now zero.

    Raises:
        BadInputError: ``spec`` does not prune; the model has no linear layers; a layer's
            input dimension is not a multiple of 4 (2:4).
    """
    import torch

    layers = decoder_linears(model)
    if not layers:
        raise BadInputError("the model has no linear layers to prune")
    if spec.method is Method.prune_unstructured:
        from torch.nn.utils import prune as torch_prune

        assert spec.sparsity is not None  # checked by CompressionSpec
        for _, module in layers:
            torch_prune.l1_unstructured(module, name="weight", amount=spec.sparsity)
            torch_prune.remove(module, "weight")
    elif spec.method is Method.prune_2_4:
        odd = [name for name, m in layers if m.in_features % 4]
        if odd:
            raise BadInputError(f"2:4 pruning needs input dimensions divisible by 4: {odd[:3]}")
        try:
            from torchao.sparsity import apply_fake_sparsity
        except ImportError as exc:
            raise BadInputError(f"torchao is not installed: {TORCHAO_INSTALL}") from exc
        names = {name for name, _ in layers}
        apply_fake_sparsity(model, filter_fn=lambda module, fqn: fqn in names)
    else:
        raise BadInputError(f"{spec.method.value} does not prune")
    with torch.no_grad():
        zeros = sum(int((m.weight == 0).sum()) for _, m in layers)
        total = sum(m.weight.numel() for _, m in layers)
    return {"layers": len(layers), "zero_share": round(zeros / total, 6)}
