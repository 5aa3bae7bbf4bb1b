"""The tiny vision-language model: built from the tiny Llama, saved, reloaded offline, trainable."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from tokenizers import Tokenizer, models
from transformers import AutoModelForImageTextToText, AutoProcessor, PreTrainedTokenizerFast

from llm.errors import BadInputError
from llm.models.chat_template import IMAGE_TOKEN
from llm.models.multimodal import (
    TINY_VISION,
    build_vlm,
    init_vlm,
    save_vlm,
    vlm_folder_for,
)
from llm.models.tiny import build_llama, llama_config
from llm.models.tokenizer import token_id


def _png(path: Path) -> Path:
    pixels = (np.random.default_rng(0).random((80, 100)) * 255).astype("uint8")
    Image.fromarray(pixels, mode="L").save(path)  # grayscale, like a chest X-ray
    return path


@pytest.mark.slow
def test_vlm_round_trips_and_gives_a_loss(
    tmp_path: Path, tokenizer: PreTrainedTokenizerFast
) -> None:
    text_model = build_llama(llama_config("tiny", tokenizer), seed=0)
    model, processor = build_vlm(text_model, tokenizer, seed=0)
    # the language model is the tiny Llama, weight for weight
    for name, weight in text_model.model.state_dict().items():
        assert torch.equal(model.model.language_model.state_dict()[name], weight), name
    assert model.config.image_token_index == token_id(tokenizer, IMAGE_TOKEN)
    summary = save_vlm(model, processor, tmp_path / "vl")
    assert summary["image_tokens"] == TINY_VISION.image_tokens == 64
    assert not list((tmp_path / "vl").glob("*.bin"))

    loaded_processor = AutoProcessor.from_pretrained(tmp_path / "vl", local_files_only=True)
    loaded = AutoModelForImageTextToText.from_pretrained(
        tmp_path / "vl", local_files_only=True, use_safetensors=True
    )
    assert type(loaded).__name__ == "LlavaForConditionalGeneration"
    messages = [
        {"role": "user", "content": [{"type": "image"}, {"type": "text", "text": "Impression?"}]},
        {"role": "assistant", "content": "No acute cardiopulmonary process."},
    ]
    text = loaded_processor.apply_chat_template(messages, tokenize=False)
    assert text.count(IMAGE_TOKEN) == 1
    batch = loaded_processor(
        images=[Image.open(_png(tmp_path / "cxr.png"))],
        text=[text],
        add_special_tokens=False,  # the chat template already wrote <|begin_of_text|>
        return_tensors="pt",
    )
    assert batch["pixel_values"].shape == (1, 3, 64, 64)
    image_id = loaded.config.image_token_index
    assert int((batch["input_ids"] == image_id).sum()) == TINY_VISION.image_tokens
    assert int((batch["input_ids"] == tokenizer.bos_token_id).sum()) == 1
    out = loaded(**batch, labels=batch["input_ids"])
    assert torch.isfinite(out.loss) and out.loss.item() > 0
    out.loss.backward()
    # the vision tower and projector learn from the text loss (image tokens carry their
    # features); only CLIP's final layer norm is unused, as LLaVA reads hidden states
    no_grad = {
        name
        for name, p in loaded.model.named_parameters()
        if p.grad is None and not name.startswith("language_model")
    }
    assert no_grad == {
        "vision_tower.post_layernorm.weight",
        "vision_tower.post_layernorm.bias",
    }


def test_vlm_needs_the_image_token(tokenizer: PreTrainedTokenizerFast) -> None:
    text_model = build_llama(llama_config("tiny", tokenizer), seed=0)
    with pytest.raises(BadInputError, match="no <image> token"):
        build_vlm(text_model, _without_image_token(tokenizer))


def _without_image_token(tokenizer: PreTrainedTokenizerFast) -> PreTrainedTokenizerFast:
    vocab = {t: i for t, i in tokenizer.get_vocab().items() if t != IMAGE_TOKEN}
    backend = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|pad|>"))
    return PreTrainedTokenizerFast(tokenizer_object=backend, unk_token="<|pad|>")


def test_vlm_folder_is_a_sibling(tmp_path: Path) -> None:
    assert vlm_folder_for(tmp_path / "models" / "tiny-clinical") == (
        tmp_path / "models" / "tiny-clinical-vl"
    )


def test_init_vlm_refuses_a_missing_text_model(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match="model folder not found"):
        init_vlm(tmp_path / "nope", tmp_path / "nope-vl")
