"""Model-writing jobs of the export worker: merge an adapter, re-save full weights.

Both run inside :mod:`llm.export.merge_worker`, a fresh Python process (see
there for why). Weights load through the project's loaders
(:mod:`llm.models.loading`): local files only,
safetensors only, no checkpoint code.

Merging happens in fp32 whatever the output dtype: ``W + B @ A * scale`` in
bf16 would round the small adapter update away in many entries. The merged
weights are cast to the output dtype afterwards. A QLoRA adapter is merged
into the full-precision base (the 4-bit base it trained against cannot hold
the update); its merged model is therefore close to, not identical with, the
quantised model plus adapter.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch

from llm.errors import BadInputError
from llm.files import read_json_object

log = logging.getLogger(__name__)

TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}
CONFIG_DTYPES = {"float32": "fp32", "bfloat16": "bf16", "float16": "fp16"}


def saved_dtype(model_dir: Path) -> str:
    """The dtype a model folder's ``config.json`` records (``fp32`` when it says none).

    Raises:
        BadInputError: the config is unreadable or names a dtype outside bf16/fp16/fp32.
    """
    path = model_dir / "config.json"
    config = read_json_object(path, what="model config")
    raw = config.get("dtype") or config.get("torch_dtype") or "float32"
    if raw not in CONFIG_DTYPES:
        raise BadInputError(f"{path}: dtype: {raw!r} is not one of {', '.join(CONFIG_DTYPES)}")
    return CONFIG_DTYPES[raw]


def load_model(model_dir: Path, *, dtype: torch.dtype, multimodal: bool) -> Any:
    """Load a causal LM or a LLaVA-style model (weights only; the tokenizer is not needed)."""
    if multimodal:
        from llm.models.loading import load_vision_language_model

        model, _ = load_vision_language_model(model_dir, dtype=dtype)
        return model
    from llm.models.loading import load_causal_lm

    model, _ = load_causal_lm(model_dir, dtype=dtype)
    return model


def _parameters(model: Any) -> int:
    return sum(p.numel() for p in model.parameters())


def merge_adapter(
    base: Path, adapter: Path, out: Path, *, dtype: str | None, multimodal: bool
) -> dict[str, Any]:
    """Fold a LoRA adapter into its base model and save the result.

    Args:
        base: the base model folder.
        adapter: folder with ``adapter_model.safetensors`` and ``adapter_config.json``.
        out: folder that gets ``config.json``, ``generation_config.json`` and
            ``model*.safetensors``.
        dtype: ``bf16``/``fp16``/``fp32``; None keeps the base model's saved dtype.
        multimodal: the base is a vision-language model.

    Returns:
        ``{"dtype": written dtype, "parameters": count}``.

    Raises:
        BadInputError: the base or adapter cannot be loaded, or they do not fit together.
    """
    from peft import PeftModel
    from transformers.integrations.deepspeed import unset_hf_deepspeed_config

    # This process was started fresh, so no DeepSpeed config can be registered here;
    # unset it anyway: a registered ZeRO-3 config makes from_pretrained partition the
    # base (empty local tensors) and the merge would write zero-size weights.
    unset_hf_deepspeed_config()
    target = dtype or saved_dtype(base)
    model = load_model(base, dtype=torch.float32, multimodal=multimodal)
    try:
        tuned = PeftModel.from_pretrained(model, str(adapter), is_trainable=False)
    except (ValueError, KeyError, RuntimeError) as exc:
        raise BadInputError(f"{adapter}: the adapter does not fit the base {base}: {exc}") from None
    merged = tuned.merge_and_unload()
    merged.to(TORCH_DTYPES[target])
    merged.save_pretrained(str(out))
    log.info("merged %s into %s, saved as %s", adapter, base, target)
    return {"dtype": target, "parameters": _parameters(merged)}


def convert_weights(model_dir: Path, out: Path, *, dtype: str, multimodal: bool) -> dict[str, Any]:
    """Re-save a full model in another dtype (safetensors).

    Args:
        model_dir: folder with ``config.json`` and ``model*.safetensors``.
        out: folder for the converted model files.
        dtype: ``bf16``, ``fp16`` or ``fp32``.
        multimodal: a vision-language model.

    Returns:
        ``{"dtype": dtype, "parameters": count}``.
    """
    model = load_model(model_dir, dtype=TORCH_DTYPES[dtype], multimodal=multimodal)
    model.save_pretrained(str(out))
    return {"dtype": dtype, "parameters": _parameters(model)}
