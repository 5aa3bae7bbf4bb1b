"""Loading base models from local folders: the tiny model or a real checkpoint.

One path for every model, causal LM (:func:`load_causal_lm`) or LLaVA-style
vision-language model (:func:`load_vision_language_model`): nothing is
fetched from a hub (``local_files_only``), only safetensors weights are read
(pickle-based ``.bin`` files can run code when unpickled, so they are
refused), no model code from the checkpoint runs (``trust_remote_code=False``),
and a checkpoint whose weights do not match its config is refused.
"""

from __future__ import annotations

import functools
import importlib.util
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
from llm.files import read_json_object
from llm.hardware import native_bf16

Quantization = Literal["4bit", "8bit"]

QLORA_INSTALL = "pip install 'clinical-llm[qlora]'"

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


@functools.cache
def _bitsandbytes_probe_error(quantization: Quantization, device: str) -> str | None:
    """Quantise a small known matrix with bitsandbytes on ``device`` and read it back.

    The answer to "can bitsandbytes quantise here" is the backend's, not the
    presence of CUDA: bitsandbytes >= 0.49 ships a CPU backend, while an older
    wheel, a build without this platform's native library or a missing kernel
    fails here instead of halfway through loading a checkpoint. A round trip of
    a 64 x 64 matrix costs about 50 ms after the import, which loading needs anyway.

    Returns:
        None when the round trip works, else what went wrong.
    """
    try:
        import bitsandbytes
        import bitsandbytes.functional as bnb_functional

        weight = torch.linspace(-1.0, 1.0, 64 * 64, device=device).reshape(64, 64)
        if quantization == "4bit":
            packed, state = bnb_functional.quantize_4bit(weight, quant_type="nf4", blocksize=64)
            restored = bnb_functional.dequantize_4bit(packed, state).float()
        else:
            rows, scales, _ = bnb_functional.int8_vectorwise_quant(weight.half())
            restored = rows.float() * scales.float()[:, None] / 127
        error = float((restored - weight).abs().max())
    # any failure of the backend (ImportError, RuntimeError, NotImplementedError from
    # an unregistered kernel) means the same to the user: it cannot quantise here
    except Exception as exc:
        return f"{type(exc).__name__}: {exc}"
    # nf4's widest step is 0.28 of a block's absmax (0.72 to 1.0), int8's 1/127: a
    # working round trip of values in [-1, 1] is off by at most 0.14
    if error > 0.15:
        return f"bitsandbytes {bitsandbytes.__version__} read back values off by {error:.3f}"
    return None


def _quantized_device(device_map: str | dict[str, Any] | None) -> Literal["cpu", "cuda"]:
    """Where transformers puts a quantised model loaded with this ``device_map``."""
    if device_map is None:  # transformers' bitsandbytes quantiser picks CUDA when present
        return "cuda" if torch.cuda.is_available() else "cpu"
    placed = set(device_map.values()) if isinstance(device_map, dict) else {device_map}
    return "cpu" if placed == {"cpu"} else "cuda"


def quantization_config(
    quantization: Quantization,
    *,
    device: Literal["cpu", "cuda"] | None = None,
    compute_dtype: torch.dtype | None = None,
) -> Any:
    """A ``BitsAndBytesConfig`` for QLoRA-style loading, once bitsandbytes has shown it works.

    Whether quantisation can run is decided by capability: bitsandbytes must be
    installed and must quantise a small matrix on ``device`` (see
    :func:`_bitsandbytes_probe_error`); its CPU backend does since 0.49, so
    QLoRA needs no GPU.

    Args:
        quantization: ``"4bit"`` (nf4, double quantisation) or ``"8bit"`` (LLM.int8).
        device: where the model will run; ``None``: CUDA when present, else CPU.
        compute_dtype: what the 4-bit layers multiply in; ``None``: bf16 where the
            device multiplies bf16 natively (:func:`llm.hardware.native_bf16`: Ampere
            or later, or a CPU with AVX512-BF16/AMX), else fp32 (emulated bf16 is slower).

    Returns:
        The transformers quantisation config.

    Raises:
        BadInputError: the value is not one of the two, bitsandbytes is not
            installed (the message names the ``qlora`` extra), or it cannot
            quantise on ``device``.
    """
    if quantization not in ("4bit", "8bit"):
        raise BadInputError(f"quantization must be '4bit', '8bit' or None, got {quantization!r}")
    if importlib.util.find_spec("bitsandbytes") is None:
        raise BadInputError(
            f"{quantization} quantization needs bitsandbytes: {QLORA_INSTALL}, "
            "or load without quantization"
        )
    where = device or _quantized_device(None)
    problem = _bitsandbytes_probe_error(quantization, where)
    if problem is not None:
        raise BadInputError(
            f"{quantization} quantization does not work on {where} with the installed "
            f"bitsandbytes ({problem}); {QLORA_INSTALL} (0.49 or later has a CPU backend), "
            "or load without quantization"
        )
    from transformers import BitsAndBytesConfig

    if quantization == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    if compute_dtype is None:
        compute_dtype = torch.bfloat16 if native_bf16(where) else torch.float32
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type="nf4",
        bnb_4bit_use_double_quant=True,
        bnb_4bit_compute_dtype=compute_dtype,
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
        dtype: weight dtype; ``"auto"`` keeps the dtype saved in the config. With
            ``quantization``, the dtype of the layers left unquantised and the one the
            4-bit layers compute in (``"auto"``: see :func:`quantization_config`).
        device_map: passed to transformers (``"auto"`` spreads over GPUs;
            needs accelerate). ``None`` loads on CPU.
        quantization: ``"4bit"``/``"8bit"`` for QLoRA (bitsandbytes; CUDA or CPU,
            see :func:`quantization_config`).

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
        kwargs["quantization_config"] = quantization_config(
            quantization,
            device=_quantized_device(device_map),
            # the unquantised layers' dtype is the 4-bit layers' compute dtype too
            compute_dtype=dtype if isinstance(dtype, torch.dtype) else None,
        )
    tokenizer = load_tokenizer(folder)
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
    return model, tokenizer


def load_tokenizer(folder: Path) -> PreTrainedTokenizerBase:
    """The tokenizer of a local model folder, with a pad token (its eos when it has none).

    Raises:
        BadInputError: the folder holds no loadable tokenizer.
    """
    try:
        tokenizer = AutoTokenizer.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{folder}: cannot load the tokenizer: {exc}") from exc
    # batching needs a pad token
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_vision_language_model(path: Path, *, dtype: torch.dtype) -> tuple[Any, Any]:
    """Load a LLaVA-style model and its processor from a local folder.

    Args:
        path: model folder (``config.json``, ``*.safetensors``, processor and tokenizer files).
        dtype: weight dtype.

    Returns:
        ``(model, processor)``; the processor's tokenizer gets a pad token (its eos)
        when it has none.

    Raises:
        BadInputError: the folder is not a loadable safetensors vision-language checkpoint.
    """
    from transformers import AutoModelForImageTextToText, AutoProcessor

    folder = check_model_folder(path)
    try:
        processor = AutoProcessor.from_pretrained(
            folder, local_files_only=True, trust_remote_code=False
        )
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{folder}: cannot load the processor: {exc}") from exc
    try:
        loaded: Any = AutoModelForImageTextToText.from_pretrained(
            folder,
            local_files_only=True,
            use_safetensors=True,
            trust_remote_code=False,
            dtype=dtype,
            output_loading_info=True,
        )
    except (OSError, ValueError) as exc:
        raise BadInputError(f"{folder}: cannot load the vision-language model: {exc}") from exc
    model, info = loaded
    missing = sorted(info.get("missing_keys", []))
    if missing:
        raise BadInputError(
            f"{folder}: the weights do not match config.json: {len(missing)} tensor(s) missing "
            f"({', '.join(missing[:5])})"
        )
    tokenizer = processor.tokenizer
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return model, processor


def read_config(config_path: str | Path) -> PretrainedConfig:
    """Read a model configuration from ``config.json`` or the folder holding it.

    Raises:
        BadInputError: the file is missing, not JSON, or names no known model type.
    """
    path = Path(config_path)
    file = path / "config.json" if path.is_dir() else path
    raw = read_json_object(file, what="model config")
    if "model_type" not in raw:
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
