"""Fixtures of the backend tests: tiny random models saved as real model folders.

A randomly initialised 2-layer Llama (``tests/train/conftest.py``) with the
project's chat tokenizer gives varied greedy output, so comparisons against
``model.generate`` are meaningful, and loads in a fraction of a second. The
LoRA adapters have perturbed ``lora_B`` so that they change the output; the
vision-language model is the project's LLaVA wrapper around the same Llama.
"""

from __future__ import annotations

import base64
import io
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch
from PIL import Image
from transformers import GenerationConfig

from serving.backends.base import GenerationChunk, Usage
from tests.train.conftest import chat_tokenizer, tiny_llama  # noqa: F401

EOT_ID_NAME = "<|eot_id|>"


def _save_llama(folder: Path, tokenizer: Any) -> Any:
    model = tiny_llama(len(tokenizer), "sdpa", use_cache=True)
    eot = tokenizer.convert_tokens_to_ids(EOT_ID_NAME)
    model.generation_config = GenerationConfig(
        eos_token_id=[eot], pad_token_id=tokenizer.pad_token_id, bos_token_id=0
    )
    model.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return model


@pytest.fixture(scope="session")
def text_model(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: Any) -> Path:  # noqa: F811
    """Folder of a tiny random Llama with the chat tokenizer (safetensors)."""
    folder = tmp_path_factory.mktemp("serving-models") / "tiny-random"
    _save_llama(folder, chat_tokenizer)
    return folder


def make_adapter(
    base: Path, out: Path, seed: int, rank: int = 4, modules_to_save: list[str] | None = None
) -> Path:
    """A peft LoRA adapter of ``base`` on q/v whose random ``lora_B`` changes the output.

    ``modules_to_save`` (e.g. ``["lm_head"]``, as the tiny recipes train it) adds whole
    copies of those modules, perturbed too.
    """
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(str(base), local_files_only=True)
    config = LoraConfig(
        r=rank,
        lora_alpha=2 * rank,
        target_modules=["q_proj", "v_proj"],
        modules_to_save=modules_to_save,
        task_type="CAUSAL_LM",
    )
    tuned = get_peft_model(model, config)
    torch.manual_seed(seed)
    with torch.no_grad():
        for name, param in tuned.named_parameters():
            if "lora_B" in name:
                param.copy_(torch.randn_like(param) * 0.5)
            elif "modules_to_save" in name:
                param.add_(torch.randn_like(param) * param.std())
    tuned.save_pretrained(str(out))
    return out


@pytest.fixture(scope="session")
def adapters(text_model: Path) -> dict[str, Path]:
    """Two LoRA adapters of ``text_model`` with different perturbed ``lora_B``.

    The second also trains ``lm_head`` in full, as ``recipes/tiny-lora-cpu.yaml`` does,
    so requests for the base and the first adapter must not see its head.
    """
    root = text_model.parent
    return {
        "tiny-dx": make_adapter(text_model, root / "adapter-dx", seed=1),
        "tiny.readmit": make_adapter(
            text_model, root / "adapter-readmit", seed=2, modules_to_save=["lm_head"]
        ),
    }


@pytest.fixture(scope="session")
def vlm_model(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: Any) -> Path:  # noqa: F811
    """Folder of a tiny LLaVA (CLIP tower + the random Llama) with its processor."""
    from llm.models.multimodal import build_vlm, save_vlm

    root = tmp_path_factory.mktemp("serving-vlm")
    text = _save_llama(root / "text", chat_tokenizer)
    model, processor = build_vlm(text, chat_tokenizer)
    folder = root / "tiny-random-vl"
    save_vlm(model, processor, folder)
    return folder


def png_data_url(color: tuple[int, int, int] = (200, 30, 30), size: int = 40) -> str:
    """A small PNG image as a data URL."""
    buffer = io.BytesIO()
    Image.new("RGB", (size, size), color).save(buffer, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


@dataclass
class Output:
    """What one request streamed: text per choice, the chunks, the finish reasons."""

    chunks: list[GenerationChunk] = field(default_factory=list)

    @property
    def texts(self) -> dict[int, str]:
        """Concatenated deltas per choice index."""
        out: dict[int, str] = {}
        for chunk in self.chunks:
            out[chunk.index] = out.get(chunk.index, "") + chunk.text
        return out

    @property
    def text(self) -> str:
        """Text of choice 0."""
        return self.texts.get(0, "")

    @property
    def usage(self) -> Usage:
        """Usage of the last chunk (the contract puts it there)."""
        usage = self.chunks[-1].usage
        assert usage is not None, "the last chunk carries no usage"
        return usage

    @property
    def finish(self) -> dict[int, str]:
        """Finish reason per choice."""
        return {c.index: c.finish_reason for c in self.chunks if c.finish_reason}
