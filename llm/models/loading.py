"""Loading base models from local folders: the tiny model or a real checkpoint.

One path for every model: nothing is fetched from a hub (``local_files_only``),
only safetensors weights are read (pickle-based ``.bin`` files can run code when
unpickled, so they are refused), and no model code from the checkpoint runs
(``trust_remote_code=False``).
"""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any, Literal

import torch
from safetensors import SafetensorError
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoTokenizer,
    PretrainedConfig,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from llm.errors import BadInputError

Quantization = Literal["4bit", "8bit"]

PICKLE_WEIGHT_PATTERNS = ("*.bin", "*.pt", "*.pth", "*.ckpt")

CONVERT_HINT = (
    'convert them once, in a trusted environment, with: python -c "from transformers import '
    "AutoModelForCausalLM as M; M.from_pretrained('SRC').save_pretrained('DST')\" "
    "(save_pretrained writes model.safetensors)"
)


def check_model_folder(path: str | Path) -> Path:
    """Check that ``path`` is a local model folder with a config and safetensors weights.

    Args:
        path: model folder.

    Returns:
        The folder as a :class:`~pathlib.Path`.

    Raises:
        BadInputError: the folder is missing, has no ``config.json``, or has
            no ``*.safetensors`` file (pickle-only weights are named and refused).
    """
    folder = Path(path)
    if not folder.is_dir():
        raise BadInputError(f"{folder}: model folder not found")
    if not (folder / "config.json").is_file():
        raise BadInputError(f"{folder}: no config.json; this is not a Hugging Face model folder")
    if not any(folder.glob("*.safetensors")):
        pickled = sorted(p.name for pattern in PICKLE_WEIGHT_PATTERNS for p in folder.glob(pattern))
        if pickled:
            raise BadInputError(
                f"{folder}: only pickle weights found ({', '.join(pickled[:3])}); pickle files "
                f"can run code when loaded and are refused: {CONVERT_HINT}"
            )
        raise BadInputError(f"{folder}: no *.safetensors weights found")
    return folder


def quantization_config(quantization: Quantization) -> Any:
    """A ``BitsAndBytesConfig`` for QLoRA-style loading.

    Args:
        quantization: ``"4bit"`` (NF4, double quantisation, bf16 compute) or ``"8bit"``.

    Returns:
        The transformers quantisation config.

    Raises:
        BadInputError: bitsandbytes is not installed or no CUDA GPU is present,
            or the value is not one of the two.
    """
    if quantization not in ("4bit", "8bit"):
        raise BadInputError(f"quantization must be '4bit', '8bit' or None, got {quantization!r}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise BadInputError(
            f"{quantization} quantization needs bitsandbytes: pip install bitsandbytes "
            "(on a machine with a CUDA GPU), or load without quantization"
        )
    if not torch.cuda.is_available():
        raise BadInputError(
            f"{quantization} quantization needs a CUDA GPU and none is present; "
            "load without quantization on CPU"
        )
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=torch.bfloat16,
    )


def load_causal_lm(
    path: str | Path,
    *,
    dtype: torch.dtype | Literal["auto"] = "auto",
    device_map: str | dict[str, Any] | None = None,
    quantization: Quantization | None = None,
) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """Load a causal LM and its tokenizer from a local folder.

    Args:
        path: model folder (the tiny model of ``model init`` or a real
            checkpoint such as ``/models/Llama-3.1-8B-Instruct``).
        dtype: weight dtype; ``"auto"`` keeps the dtype saved in the config.
        device_map: passed to transformers (``"auto"`` spreads over GPUs;
            needs accelerate). ``None`` loads on CPU.
        quantization: ``"4bit"``/``"8bit"`` for QLoRA (CUDA + bitsandbytes only).

    Returns:
        ``(model, tokenizer)``; the tokenizer gets a pad token (its eos) when
        the checkpoint has none, as batching needs one.

    Raises:
        BadInputError: the folder is not a loadable safetensors checkpoint, or
            the quantisation asked for cannot run here.
    """
    folder = check_model_folder(path)
    kwargs: dict[str, Any] = {
        "local_files_only": True,
        "use_safetensors": True,
        "trust_remote_code": False,
        "dtype": dtype,
    }
    if device_map is not None:
        kwargs["device_map"] = device_map
    if quantization is not None:
        kwargs["quantization_config"] = quantization_config(quantization)
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{folder}: cannot load the tokenizer: {exc}") from exc
    try:
        loaded: Any = AutoModelForCausalLM.from_pretrained(
            folder, output_loading_info=True, **kwargs
        )
    except (OSError, ValueError, SafetensorError) as exc:
        raise BadInputError(f"{folder}: cannot load the model: {exc}") from exc
    model: PreTrainedModel = loaded[0]
    info: dict[str, Any] = loaded[1]
    # transformers initialises missing weights at random and only logs it; a base
    # model with random layers must not pass silently into training or serving.
    missing = sorted(info.get("missing_keys", []))
    if missing:
        shown = ", ".join(missing[:5]) + (
            f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        )
        raise BadInputError(
            f"{folder}: the weights do not match config.json: {len(missing)} tensor(s) "
            f"missing ({shown})"
        )
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, tokenizer


def read_config(config_path: str | Path) -> PretrainedConfig:
    """Read a model configuration from ``config.json`` or the folder holding it.

    Raises:
        BadInputError: the file is missing, not JSON, or names no known model type.
    """
    path = Path(config_path)
    file = path / "config.json" if path.is_dir() else path
    if not file.is_file():
        raise BadInputError(f"{file}: model config not found")
    try:
        raw = json.loads(file.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(f"{file}:{exc.lineno}: not valid JSON: {exc.msg}") from None
    if not isinstance(raw, dict) or "model_type" not in raw:
        raise BadInputError(f"{file}: model_type: missing; cannot tell which architecture to build")
    model_type = raw.pop("model_type")
    try:
        return AutoConfig.for_model(model_type, **raw)
    except (KeyError, ValueError) as exc:
        raise BadInputError(f"{file}: model_type: {exc}") from None


def build_meta_model(config_path: str | Path) -> PreTrainedModel:
    """Instantiate a causal LM architecture on the meta device (no memory for weights).

    Used for dry runs of recipes for large models (Llama-3.1-8B): shapes,
    parameter counts and LoRA target modules can be checked on a laptop.

    Args:
        config_path: ``config.json`` or a folder holding one.

    Returns:
        The model; every parameter is on the ``meta`` device.

    Raises:
        BadInputError: the config cannot be read.
    """
    config = read_config(config_path)
    with torch.device("meta"):
        return AutoModelForCausalLM.from_config(config, trust_remote_code=False)
