"""The model a recipe trains: precision, base weights, and LoRA/QLoRA adapters.

Base weights load through :mod:`llm.models.loading` (local folder, safetensors
only, no checkpoint code), causal LMs and vision-language models alike. Call
:func:`load_model` after the ``TrainingArguments`` exist: with a ZeRO-3
DeepSpeed config they register it globally, and ``from_pretrained`` then
partitions the weights while loading instead of materialising the whole model
in every process.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch

from llm.errors import BadInputError
from llm.files import read_json_object
from llm.hardware import cpu_auto_precision
from llm.train.attention import SDPA_VARLEN, register_varlen_sdpa
from llm.train.distributed import is_cpu_run
from llm.train.recipe import Recipe, resolve_dtype

log = logging.getLogger(__name__)

TORCH_DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class LoadedModel:
    """The model to train and what turns text (and images) into its inputs.

    Attributes:
        model: the model, with adapters applied for lora/qlora.
        tokenizer: its tokenizer (with the chat template).
        processor: the processor of a vision-language model (None for text models);
            saved beside the final model instead of the bare tokenizer.
        image_seq_length: embedding slots per image (1 for text models).
        precision: ``bf16``, ``fp16`` or ``fp32``: the Trainer's mixed precision.
        trainable_params: parameters that receive gradients.
        total_params: every parameter (adapters included).
    """

    model: Any
    tokenizer: Any
    processor: Any
    image_seq_length: int
    precision: str
    trainable_params: int
    total_params: int


def base_config(recipe: Recipe) -> dict[str, Any]:
    """``<model.base>/config.json`` as a dict.

    Raises:
        BadInputError: ``model.base`` is unset, or its config is missing or not JSON.
    """
    if recipe.model.base is None:
        raise BadInputError(
            "model.base: required for training (a local checkpoint folder, e.g. "
            "models/tiny-clinical from `clinical-llm model init`)"
        )
    path = recipe.model.base / "config.json"
    return read_json_object(
        path,
        what="model config",
        hint=f"model.base: build the tiny model with `clinical-llm model init --records R "
        f"--out {recipe.model.base}` or point model.base at a checkpoint",
    )


def training_precision(recipe: Recipe, config: dict[str, Any]) -> str:
    """Mixed precision of the run: ``bf16``, ``fp16`` or ``fp32``.

    ``model.dtype: auto`` follows the checkpoint's dtype on a CUDA GPU. On CPU
    it picks by the hardware, whatever the checkpoint holds: bf16 where the CPU
    multiplies bf16 natively (AVX512-BF16 or AMX; the tiny LoRA recipe's steps
    are 1.3-1.5 times faster, the 30 M ``small`` model's 1.9 times, at the same
    loss), fp32 elsewhere, where bf16 is emulated and slower. An explicit
    ``bf16`` or ``fp32`` is honoured everywhere.

    Raises:
        BadInputError: fp16 without a CUDA GPU.
    """
    resolved = resolve_dtype(recipe.model.dtype, config)
    on_gpu = torch.cuda.is_available() and not is_cpu_run()
    if recipe.model.dtype == "auto" and not on_gpu:
        chosen = cpu_auto_precision()
        log.info("model.dtype auto on CPU: %s (native bf16: %s)", chosen, chosen == "bf16")
        return chosen
    if resolved == "fp16" and not on_gpu:
        raise BadInputError(
            "model.dtype: fp16 needs a CUDA GPU (loss scaling); use bf16 or fp32 on CPU"
        )
    return resolved


def _load_dtype(recipe: Recipe, precision: str) -> torch.dtype:
    # Adapters train on a frozen base stored in the run's precision. Full fine-tuning
    # keeps fp32 master weights: the Trainer's autocast (or DeepSpeed's bf16/fp16
    # engine, which makes its own 16-bit copy) provides the low-precision compute.
    if recipe.method.kind == "full":
        return torch.float32
    return TORCH_DTYPES[precision]


def _check_quantization(recipe: Recipe) -> None:
    quant = recipe.method.quantization
    if quant is not None and (quant.quant_type != "nf4" or not quant.double_quant):
        raise BadInputError(
            "method.quantization: llm.models.loading loads 4-bit bases as nf4 with double "
            f"quantisation only; got quant_type={quant.quant_type}, double_quant="
            f"{quant.double_quant}. Use the defaults (nf4, true)"
        )


def _disable_cache(model: Any) -> None:
    # The KV cache is useless in training, and with it on transformers skips the
    # packed-sequence mask (packed examples would attend to each other).
    model.config.use_cache = False
    text_config = getattr(model.config, "text_config", None)
    if text_config is not None:
        text_config.use_cache = False


def lora_config(recipe: Recipe) -> Any:
    """The peft ``LoraConfig`` of the recipe's ``method.lora``.

    The one place the adapters are described: training (:func:`apply_adapters`)
    and the dry run wrap the model with this same config, so the dry run counts
    the parameters the real run trains.

    Args:
        recipe: the validated recipe (``method.kind`` lora or qlora).

    Returns:
        A ``peft.LoraConfig`` for a causal LM, biases left untrained.
    """
    from peft import LoraConfig, TaskType

    lora = recipe.method.lora
    assert lora is not None  # the recipe checks require it for lora/qlora
    return LoraConfig(
        r=lora.r,
        lora_alpha=lora.alpha,
        lora_dropout=lora.dropout,
        target_modules=lora.target_modules,
        modules_to_save=list(lora.modules_to_save) or None,
        bias="none",
        task_type=TaskType.CAUSAL_LM,
    )


def apply_adapters(model: Any, recipe: Recipe) -> Any:
    """Wrap ``model`` in peft LoRA adapters as the recipe's ``method.lora`` says.

    For qlora the 4-bit base goes through peft's ``prepare_model_for_kbit_training``
    first, on CPU as on CUDA: it freezes the base and casts the layers left
    unquantised (embeddings, norms, a head that is not tied) from 16 bits to fp32,
    the QLoRA recipe's stable residual stream; the 4-bit layers keep their compute
    dtype. Its gradient-checkpointing part is not used: the Trainer turns
    checkpointing on itself, non-reentrant, which needs no input-gradient hook.

    Args:
        model: the base model (4-bit for qlora).
        recipe: the validated recipe (``method.kind`` lora or qlora).

    Returns:
        The ``PeftModel``; only adapters (and ``modules_to_save``) are trainable.
    """
    from peft import get_peft_model, prepare_model_for_kbit_training

    if recipe.method.kind == "qlora":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=False)
    try:
        return get_peft_model(model, lora_config(recipe))
    except ValueError as exc:
        raise BadInputError(f"method.lora.target_modules: {exc}") from None


def cast_trainable(model: Any, dtype: torch.dtype) -> int:
    """Put every trainable parameter in ``dtype``; returns how many values changed dtype.

    Over a 16-bit frozen base, peft makes LoRA matrices fp32 but copies
    ``modules_to_save`` in the base's 16-bit dtype. Without DeepSpeed, pass
    fp32: AdamW steps on bf16 weights round away updates under about 0.4% of a
    weight, and the Trainer's autocast still runs the matmuls in 16 bits. Under
    DeepSpeed, pass the run's 16-bit dtype: its bf16/fp16 engine keeps fp32
    master weights in the optimizer itself, and ZeRO-3 refuses trainable
    parameters of mixed dtypes. Parameters ZeRO-3 has already partitioned
    (``ds_id``) are left alone: they hold the load dtype already.
    """
    changed = 0
    for param in model.parameters():
        if param.requires_grad and param.dtype != dtype and not hasattr(param, "ds_id"):
            param.data = param.data.to(dtype)
            changed += param.numel()
    return changed


def _numel(param: Any) -> int:
    """Values a parameter stands for: ZeRO-3 partitions and 4-bit packed weights hold fewer."""
    if hasattr(param, "ds_numel"):
        return int(param.ds_numel)
    # a bitsandbytes Params4bit packs two values a byte; its quant_state keeps the shape
    shape = getattr(getattr(param, "quant_state", None), "shape", None)
    return int(torch.Size(shape).numel()) if shape is not None else int(param.numel())


def count_parameters(model: Any) -> tuple[int, int]:
    """(trainable, total) parameters; under ZeRO-3 the full sizes, for 4-bit weights unpacked."""
    trainable = total = 0
    for p in model.parameters():
        n = _numel(p)
        total += n
        trainable += n if p.requires_grad else 0
    return trainable, total


def _keep_zeros(model: Any, recipe: Recipe, deepspeed_stage: int | None) -> None:
    """``method.keep_zeros`` for a full fine-tune: mask the zero weights' gradients."""
    from llm.models.sparsity import keep_zeros_in_training, zero_count

    if deepspeed_stage == 3:
        raise BadInputError(
            "method.keep_zeros: DeepSpeed ZeRO-3 partitions the weights, so their zeros "
            "cannot be masked; run the recovery fine-tune with ZeRO-2 (deepspeed: "
            "recipes/deepspeed/zero2.json), or in one process (`clinical-llm compress recover`)"
        )
    masks = keep_zeros_in_training(model)
    if not masks:
        log.warning(
            "method.keep_zeros: %s has no zero weights (not a pruned model); nothing is kept",
            recipe.model.base,
        )
        return
    log.info(
        "method.keep_zeros: %s zero weights in %d linear layers stay zero (gradients masked)",
        f"{zero_count(masks):,}",
        len(masks),
    )


def load_model(
    recipe: Recipe, *, precision: str, deepspeed: bool = False, deepspeed_stage: int | None = None
) -> LoadedModel:
    """Load the recipe's base model and prepare it for its method.

    Args:
        recipe: the validated recipe.
        precision: from :func:`training_precision`.
        deepspeed: DeepSpeed will wrap the model (trainable parameters then take
            the run's precision instead of fp32, see :func:`cast_trainable`).
        deepspeed_stage: its ZeRO stage (None without DeepSpeed).

    Returns:
        The model (adapters applied for lora/qlora, KV cache off, zero weights kept for
        ``method.keep_zeros``) and its tokenizer.

    Raises:
        BadInputError: the base folder cannot be loaded, the quantisation cannot
            run here, the adapter targets match nothing, or ``method.keep_zeros`` asks
            for a full fine-tune under ZeRO-3.
    """
    from llm.models.loading import Quantization, load_causal_lm, load_vision_language_model

    assert recipe.model.base is not None  # base_config() was called first
    dtype = _load_dtype(recipe, precision)
    processor = None
    seq_length = 1
    if recipe.model.multimodal:
        from llm.train.multimodal import image_seq_length

        model, processor = load_vision_language_model(recipe.model.base, dtype=dtype)
        tokenizer = processor.tokenizer
        seq_length = image_seq_length(model)
    else:
        quantization: Quantization | None = None
        device_map = None
        if recipe.method.kind == "qlora":
            _check_quantization(recipe)
            quantization = "4bit"
            # bitsandbytes would put the 4-bit model on a GPU when one is present,
            # even for a run launched on CPU
            device_map = {"": "cpu"} if is_cpu_run() else None
        model, tokenizer = load_causal_lm(
            recipe.model.base, dtype=dtype, device_map=device_map, quantization=quantization
        )
    if tokenizer.chat_template is None:
        raise BadInputError(
            f"{recipe.model.base}: the tokenizer has no chat template; training needs the "
            "project's (llm.models.chat_template) or the checkpoint's own with "
            "{% generation %} markers"
        )
    if recipe.model.attn_implementation == SDPA_VARLEN:
        register_varlen_sdpa()
    model.set_attn_implementation(recipe.model.attn_implementation)
    _disable_cache(model)
    if recipe.method.keep_zeros and recipe.method.kind == "full":
        _keep_zeros(model, recipe, deepspeed_stage)
    if recipe.method.kind in ("lora", "qlora"):
        model = apply_adapters(model, recipe)
        cast_trainable(model, TORCH_DTYPES[precision] if deepspeed else torch.float32)
    trainable, total = count_parameters(model)
    log.info(
        "model %s: %s parameters, %s trainable (%s), %s, attention %s",
        recipe.model.base.name,
        f"{total:,}",
        f"{trainable:,}",
        recipe.method.kind,
        precision,
        model.config._attn_implementation,
    )
    return LoadedModel(
        model=model,
        tokenizer=tokenizer,
        processor=processor,
        image_seq_length=seq_length,
        precision=precision,
        trainable_params=trainable,
        total_params=total,
    )
