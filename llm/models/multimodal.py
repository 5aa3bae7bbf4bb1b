"""The tiny vision-language model: a small CLIP vision tower in front of the tiny Llama.

Standard LLaVA layout (``LlavaForConditionalGeneration``): a CLIP vision
encoder, a two-layer projector, and the pretrained tiny Llama as its language
model. The processor is built here from local parts (no hub): a CLIP image
processor sized to the vision tower and the tiny model's tokenizer; each
``<image>`` in the text expands to one token per image patch.

Only the language model is pretrained; the vision tower and projector start
from a seeded random initialisation and learn during fine-tuning on the
multimodal tasks (``radiology_impression``, ``ecg_rhythm``).
"""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from transformers import (
    CLIPVisionConfig,
    GenerationConfig,
    LlamaForCausalLM,
    LlavaConfig,
    LlavaForConditionalGeneration,
    LlavaProcessor,
    PreTrainedTokenizerBase,
)

from llm.errors import BadInputError
from llm.models.chat_template import CHAT_TEMPLATE, IMAGE_TOKEN
from llm.models.loading import load_causal_lm
from llm.models.manifest import (
    file_sha256,
    hardware,
    library_versions,
    now_iso,
    prepare_model_folder,
    write_manifest,
)
from llm.models.tokenizer import token_id

# CLIP's normalisation constants (the values its image processor defaults to).
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


@dataclass(frozen=True)
class VisionShape:
    """Vision tower hyper-parameters."""

    image_size: int = 64
    patch_size: int = 8
    hidden_size: int = 128
    intermediate_size: int = 512
    num_hidden_layers: int = 2
    num_attention_heads: int = 2  # head size 64, which every attention backend supports

    @property
    def image_tokens(self) -> int:
        """Tokens one image becomes in the language model (one per patch)."""
        return (self.image_size // self.patch_size) ** 2


TINY_VISION = VisionShape()
VLM_KIND = "vision_language_model"


def vlm_folder_for(text_model_dir: Path) -> Path:
    """Where ``model init --multimodal`` writes the VLM: a sibling named ``<name>-vl``."""
    return text_model_dir.parent / f"{text_model_dir.name}-vl"


def build_vlm(
    text_model: LlamaForCausalLM,
    tokenizer: PreTrainedTokenizerBase,
    *,
    vision: VisionShape = TINY_VISION,
    seed: int = 0,
) -> tuple[LlavaForConditionalGeneration, LlavaProcessor]:
    """Wrap a causal Llama into a LLaVA model with a fresh vision tower.

    Args:
        text_model: the pretrained language model; its weights are copied.
        tokenizer: its tokenizer; must have the ``<image>`` token.
        vision: vision tower shape.
        seed: seeds the vision tower and projector initialisation.

    Returns:
        ``(model, processor)``.

    Raises:
        BadInputError: the tokenizer has no ``<image>`` token.
    """
    try:
        image_token_id = token_id(tokenizer, IMAGE_TOKEN)
    except ValueError:
        raise BadInputError(
            f"the tokenizer has no {IMAGE_TOKEN} token; rebuild it with model init"
        ) from None
    text_config = text_model.config
    vision_config = CLIPVisionConfig(
        image_size=vision.image_size,
        patch_size=vision.patch_size,
        hidden_size=vision.hidden_size,
        intermediate_size=vision.intermediate_size,
        num_hidden_layers=vision.num_hidden_layers,
        num_attention_heads=vision.num_attention_heads,
        projection_dim=vision.hidden_size,
    )
    config = LlavaConfig(
        vision_config=vision_config,
        text_config=text_config,
        image_token_index=image_token_id,
        image_seq_length=vision.image_tokens,
        vision_feature_select_strategy="default",  # drop CLS: one token per patch
        vision_feature_layer=-1,
        tie_word_embeddings=bool(text_config.tie_word_embeddings),
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    missing, unexpected = model.model.language_model.load_state_dict(
        text_model.model.state_dict(), strict=True
    )
    if missing or unexpected:  # strict=True raises first; kept for type checkers
        raise RuntimeError(f"text weights do not fit: missing {missing}, unexpected {unexpected}")
    with torch.no_grad():
        model.lm_head.weight.copy_(text_model.lm_head.weight)
    model.generation_config = GenerationConfig(**text_model.generation_config.to_diff_dict())
    processor = build_processor(tokenizer, vision)
    return model, processor


def _clip_image_processor_class() -> type:
    # Without torchvision, transformers falls back to the PIL backend anyway (with a
    # warning on every use); ask for it directly. Both save as "CLIPImageProcessor".
    if importlib.util.find_spec("torchvision") is None:
        from transformers import CLIPImageProcessorPil

        return CLIPImageProcessorPil
    from transformers import CLIPImageProcessor

    return CLIPImageProcessor


def build_processor(tokenizer: PreTrainedTokenizerBase, vision: VisionShape) -> LlavaProcessor:
    """A LLaVA processor from local parts: CLIP image preprocessing + the tokenizer.

    Args:
        tokenizer: the language model's tokenizer.
        vision: vision tower shape (sets the resize/crop size and patch size).

    Returns:
        The processor, with the project's chat template.
    """
    image_processor = _clip_image_processor_class()(
        size={"shortest_edge": vision.image_size},
        crop_size={"height": vision.image_size, "width": vision.image_size},
        do_center_crop=True,
        do_convert_rgb=True,
        image_mean=list(CLIP_MEAN),
        image_std=list(CLIP_STD),
    )
    return LlavaProcessor(
        image_processor=image_processor,
        tokenizer=tokenizer,
        patch_size=vision.patch_size,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # the CLS token, dropped by "default"
        chat_template=CHAT_TEMPLATE,
        image_token=IMAGE_TOKEN,
    )


def save_vlm(
    model: LlavaForConditionalGeneration, processor: LlavaProcessor, out: Path
) -> dict[str, Any]:
    """Save the VLM and its processor (safetensors) to ``out``.

    Returns:
        A summary for the manifest: parameter counts and the vision shape.
    """
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out)
    processor.save_pretrained(out)
    vision = model.config.vision_config
    if not isinstance(vision, CLIPVisionConfig):
        raise TypeError(f"expected a CLIP vision config, got {type(vision).__name__}")
    return {
        "architecture": "LlavaForConditionalGeneration",
        "parameters": sum(p.numel() for p in model.parameters()),
        "vision_parameters": sum(p.numel() for p in model.model.vision_tower.parameters()),
        "image_size": vision.image_size,
        "patch_size": vision.patch_size,
        "image_tokens": model.config.image_seq_length,
        "image_token_id": model.config.image_token_index,
    }


def init_vlm(text_model_dir: Path, out: Path, *, seed: int = 0) -> dict[str, Any]:
    """Build the VLM from a saved tiny Llama folder and write it, with a manifest.

    Args:
        text_model_dir: folder written by ``model init`` (loaded as safetensors).
        out: folder for the VLM (conventionally :func:`vlm_folder_for`).
        seed: seeds the vision tower and projector.

    Returns:
        The manifest written to ``out/manifest.json``.

    Raises:
        BadInputError: the text model folder cannot be loaded.
    """
    started = now_iso()
    text_model, tokenizer = load_causal_lm(text_model_dir, dtype=torch.float32)
    if not isinstance(text_model, LlamaForCausalLM):
        raise BadInputError(
            f"{text_model_dir}: expected a LlamaForCausalLM, got {type(text_model).__name__}"
        )
    model, processor = build_vlm(text_model, tokenizer, seed=seed)
    prepare_model_folder(out, VLM_KIND)
    summary = save_vlm(model, processor, out)
    manifest: dict[str, Any] = {
        "kind": VLM_KIND,
        "text_model": str(text_model_dir),
        "text_model_sha256": file_sha256(text_model_dir / "model.safetensors"),
        "seed": seed,
        "model": summary,
        "trained": "language model pretrained on notes; vision tower and projector random",
        "libraries": library_versions(),
        "hardware": hardware(),
        "started": started,
        "finished": now_iso(),
    }
    write_manifest(out, manifest)
    return manifest
