"""Loading local checkpoints: safetensors only, offline, clear refusals; meta-device builds."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
from typing import Any

import pytest
import torch
from safetensors.torch import save_file
from transformers import PreTrainedTokenizerFast

from llm.errors import BadInputError
from llm.models.loading import (
    _bitsandbytes_probe_error,
    build_meta_model,
    check_model_folder,
    load_causal_lm,
    quantization_config,
    read_config,
)
from llm.models.tiny import build_llama, llama_config

LLAMA_31_8B = {
    "architectures": ["LlamaForCausalLM"],
    "attention_bias": False,
    "bos_token_id": 128000,
    "eos_token_id": [128001, 128008, 128009],
    "head_dim": 128,
    "hidden_act": "silu",
    "hidden_size": 4096,
    "intermediate_size": 14336,
    "max_position_embeddings": 131072,
    "mlp_bias": False,
    "model_type": "llama",
    "num_attention_heads": 32,
    "num_hidden_layers": 32,
    "num_key_value_heads": 8,
    "rms_norm_eps": 1e-05,
    "rope_scaling": {
        "factor": 8.0,
        "high_freq_factor": 4.0,
        "low_freq_factor": 1.0,
        "original_max_position_embeddings": 8192,
        "rope_type": "llama3",
    },
    "rope_theta": 500000.0,
    "tie_word_embeddings": False,
    "torch_dtype": "bfloat16",
    "vocab_size": 128256,
}


@pytest.fixture
def tiny_folder(tmp_path: Path, tokenizer: PreTrainedTokenizerFast) -> Path:
    """An untrained tiny Llama saved the way ``model init`` saves it."""
    folder = tmp_path / "tiny"
    model = build_llama(llama_config("tiny", tokenizer), seed=0)
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def test_loads_the_tiny_model_offline(tiny_folder: Path) -> None:
    model, tokenizer = load_causal_lm(tiny_folder, dtype=torch.float32)
    assert type(model).__name__ == "LlamaForCausalLM"
    assert next(model.parameters()).dtype == torch.float32
    ids = tokenizer("cough and fever", return_tensors="pt")["input_ids"]
    logits = model(input_ids=ids).logits
    assert logits.shape == (1, ids.shape[1], len(tokenizer))


def test_missing_folder_and_missing_config(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="model folder not found"):
        load_causal_lm(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(BadInputError, match=r"no config\.json"):
        load_causal_lm(tmp_path / "empty")


def test_pickle_only_weights_are_refused_with_a_conversion_hint(tiny_folder: Path) -> None:
    (tiny_folder / "model.safetensors").rename(tiny_folder / "pytorch_model.bin")
    with pytest.raises(BadInputError) as info:
        load_causal_lm(tiny_folder)
    message = str(info.value)
    assert "pytorch_model.bin" in message
    assert "pickle" in message and "refused" in message
    assert "save_pretrained" in message


def test_folder_without_weights_is_refused(tiny_folder: Path) -> None:
    (tiny_folder / "model.safetensors").unlink()
    with pytest.raises(BadInputError, match=r"no \*\.safetensors weights"):
        check_model_folder(tiny_folder)


def test_weights_that_do_not_fit_the_config_are_refused(tiny_folder: Path) -> None:
    # transformers alone would initialise the missing tensors at random and carry on.
    (tiny_folder / "model.safetensors").unlink()
    save_file({"unrelated": torch.zeros(2)}, str(tiny_folder / "model.safetensors"))
    with pytest.raises(BadInputError, match=r"tensor\(s\) missing \(.*embed_tokens"):
        load_causal_lm(tiny_folder)


def test_corrupt_safetensors_is_bad_input(tiny_folder: Path) -> None:
    (tiny_folder / "model.safetensors").write_bytes(b"not a safetensors file")
    with pytest.raises(BadInputError, match="cannot load the model"):
        load_causal_lm(tiny_folder)


def _hide_bitsandbytes(monkeypatch: pytest.MonkeyPatch) -> None:
    find_spec = importlib.util.find_spec

    def without_bitsandbytes(name: str, *args: Any, **kwargs: Any) -> Any:
        return None if name == "bitsandbytes" else find_spec(name, *args, **kwargs)

    monkeypatch.setattr(importlib.util, "find_spec", without_bitsandbytes)


@pytest.mark.parametrize("mode", ["4bit", "8bit"])
def test_quantization_without_bitsandbytes_names_the_extra(
    tiny_folder: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    _hide_bitsandbytes(monkeypatch)
    with pytest.raises(
        BadInputError, match=r"needs bitsandbytes: pip install 'clinical-llm\[qlora\]'"
    ):
        load_causal_lm(tiny_folder, quantization=mode)  # type: ignore[arg-type]
    with pytest.raises(BadInputError, match="must be"):
        quantization_config("2bit")  # type: ignore[arg-type]


@pytest.mark.parametrize("native", [True, False])
def test_4bit_compute_dtype_is_bf16_only_where_native(
    native: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("llm.models.loading.native_bf16", lambda device: native)
    config = quantization_config("4bit", device="cpu")
    assert config.load_in_4bit and config.bnb_4bit_quant_type == "nf4"
    assert config.bnb_4bit_use_double_quant
    assert config.bnb_4bit_compute_dtype == (torch.bfloat16 if native else torch.float32)
    chosen = quantization_config("4bit", device="cpu", compute_dtype=torch.float32)
    assert chosen.bnb_4bit_compute_dtype == torch.float32


def test_a_backend_that_cannot_quantise_is_named() -> None:
    # no bitsandbytes kernel reads values back from the meta device
    problem = _bitsandbytes_probe_error("4bit", "meta")
    assert problem is not None and problem.startswith(("RuntimeError", "NotImplementedError"))
    assert _bitsandbytes_probe_error("4bit", "cpu") is None
    assert _bitsandbytes_probe_error("8bit", "cpu") is None


def test_tiny_model_loads_in_nf4_on_cpu(tiny_folder: Path) -> None:
    import bitsandbytes as bnb

    model, tokenizer = load_causal_lm(tiny_folder, dtype=torch.float32, quantization="4bit")
    linear = [m for m in model.modules() if isinstance(m, bnb.nn.Linear4bit)]
    assert len(linear) == 7 * model.config.num_hidden_layers  # lm_head stays unquantised
    assert all(m.weight.device.type == "cpu" and m.compute_dtype == torch.float32 for m in linear)
    ids = tokenizer("cough and fever", return_tensors="pt")["input_ids"]
    reference, _ = load_causal_lm(tiny_folder, dtype=torch.float32)
    # nf4 weights: close to, not equal to, the full-precision model's logits
    quantised, full = model(input_ids=ids).logits, reference(input_ids=ids).logits
    assert torch.isfinite(quantised).all() and not torch.equal(quantised, full)
    assert torch.nn.functional.cosine_similarity(quantised.flatten(), full.flatten(), dim=0) > 0.9


def test_read_config_errors_name_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "config.json"
    bad.write_text("{not json", encoding="utf-8")
    with pytest.raises(BadInputError, match=r"config\.json:1: not valid JSON"):
        read_config(tmp_path)
    bad.write_text(json.dumps({"hidden_size": 8}), encoding="utf-8")
    with pytest.raises(BadInputError, match="model_type: missing"):
        read_config(bad)
    with pytest.raises(BadInputError, match="not found"):
        read_config(tmp_path / "other.json")


def test_meta_model_of_llama_31_8b_counts_params_without_memory(tmp_path: Path) -> None:
    path = tmp_path / "config.json"
    path.write_text(json.dumps(LLAMA_31_8B), encoding="utf-8")
    model = build_meta_model(path)
    params = list(model.parameters())
    assert {p.device.type for p in params} == {"meta"}
    assert sum(p.numel() for p in params) == 8_030_261_248
    assert model.config.rope_parameters["rope_type"] == "llama3"
