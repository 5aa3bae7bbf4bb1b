"""Local runner: a transformers causal LM from a model folder, batched greedy generation.

Prompts are sorted by length and generated ``batch_size`` at a time, padded on
the left (so every prompt ends where generation starts); generation stops at
the end-of-turn token (``<|eot_id|>``) or ``max_tokens``. Constrained-choice
scoring reuses the shared answer scoring
(:mod:`llm.models.answer_scoring`), so a choice is scored on exactly the
tokens fine-tuning put a loss on.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from eval.runners.base import Advance, GenerationParams, Prompt, truncate_at_stop
from eval.runners.prompting import encode_prompt
from llm.errors import BadInputError
from llm.models.answer_scoring import answer_log_likelihoods
from llm.models.loading import load_causal_lm

# tokenizers without a real limit report a huge sentinel as model_max_length
_NO_LIMIT = 1_000_000


def _stop_token_ids(model: Any, tokenizer: Any) -> list[int]:
    """End-of-turn first, then any other end token the generation config lists."""
    ids: list[int] = []
    configured = getattr(model.generation_config, "eos_token_id", None)
    for candidate in [
        tokenizer.eos_token_id,
        *(configured if isinstance(configured, list) else [configured]),
    ]:
        if isinstance(candidate, int) and candidate not in ids:
            ids.append(candidate)
    if not ids:
        raise BadInputError("the tokenizer has no end-of-turn token; generation could not stop")
    return ids


class LocalRunner:
    """A model folder run in this process with transformers.

    Args:
        model_path: model folder (safetensors + tokenizer with a chat template).
        batch_size: prompts generated together.
        max_length: longest prompt + completion in tokens (default: the model's
            ``max_position_embeddings``, or the tokenizer's limit when smaller).
        device: torch device (default: CUDA when available, else CPU).

    Raises:
        BadInputError: the folder is not a loadable model, or its tokenizer has
            no chat template.
    """

    kind = "local"
    supports_images = False
    supports_loglikelihood = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        batch_size: int = 8,
        max_length: int | None = None,
        device: str | None = None,
    ) -> None:
        if batch_size < 1:
            raise BadInputError(f"--batch-size must be at least 1, got {batch_size}")
        self.model_path = Path(model_path)
        self.batch_size = batch_size
        self.chunk_size = batch_size
        self.device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        model, tokenizer = load_causal_lm(self.model_path)
        if not getattr(tokenizer, "chat_template", None):
            raise BadInputError(f"{self.model_path}: the tokenizer has no chat template")
        self.model: Any = model.to(self.device).eval()  # type: ignore[arg-type]
        self.tokenizer = tokenizer
        self.stop_ids = _stop_token_ids(model, tokenizer)
        limits = [int(getattr(model.config, "max_position_embeddings", 0) or 0)]
        if 0 < int(tokenizer.model_max_length or 0) < _NO_LIMIT:
            limits.append(int(tokenizer.model_max_length))
        self.max_length = max_length or min(x for x in limits if x > 0)
        self.truncated_prompts = 0

    def _encode(self, prompts: Sequence[Prompt], max_tokens: int) -> list[list[int]]:
        budget = self.max_length - max_tokens
        if budget < 1:
            raise BadInputError(
                f"max_tokens {max_tokens} leaves no room for a prompt in the model's "
                f"{self.max_length} tokens"
            )
        encoded = []
        for prompt in prompts:
            ids, truncated = encode_prompt(self.tokenizer, prompt, budget)
            self.truncated_prompts += truncated
            encoded.append(ids)
        return encoded

    def _generate_batch(self, batch: list[list[int]], params: GenerationParams) -> list[str]:
        width = max(len(ids) for ids in batch)
        pad = self.tokenizer.pad_token_id
        input_ids = torch.full((len(batch), width), pad, dtype=torch.long)
        attention_mask = torch.zeros((len(batch), width), dtype=torch.long)
        for i, ids in enumerate(batch):
            input_ids[i, width - len(ids) :] = torch.tensor(ids, dtype=torch.long)
            attention_mask[i, width - len(ids) :] = 1
        sampling: dict[str, Any] = {"do_sample": False}
        if params.temperature > 0:
            torch.manual_seed(params.seed)
            sampling = {"do_sample": True, "temperature": params.temperature, "top_k": 0}
        with torch.no_grad():
            out = self.model.generate(
                input_ids=input_ids.to(self.device),
                attention_mask=attention_mask.to(self.device),
                max_new_tokens=params.max_tokens,
                eos_token_id=self.stop_ids,
                pad_token_id=pad,
                **sampling,
            )
        texts = self.tokenizer.batch_decode(out[:, width:], skip_special_tokens=True)
        return [truncate_at_stop(text, params.stop) for text in texts]

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, advance: Advance | None = None
    ) -> list[str]:
        """Greedy (or seeded sampled) completions, batched by length.

        Args:
            prompts: chat prompts (string content).
            params: decoding settings.
            advance: called with the number of prompts finished after each batch.

        Returns:
            One completion per prompt, in the order given, cut at ``params.stop``.

        Raises:
            BadInputError: a prompt that cannot fit the model's length.
        """
        encoded = self._encode(prompts, params.max_tokens)
        # longest first: similar lengths share a batch, and memory peaks at the start
        order = sorted(range(len(encoded)), key=lambda i: -len(encoded[i]))
        results: list[str] = [""] * len(encoded)
        for start in range(0, len(order), self.batch_size):
            chunk = order[start : start + self.batch_size]
            texts = self._generate_batch([encoded[i] for i in chunk], params)
            for i, text in zip(chunk, texts, strict=True):
                results[i] = text
            if advance is not None:
                advance(len(chunk))
        return results

    def loglikelihood(self, prompt: Prompt, choices: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each choice's answer tokens (and its ``<|eot_id|>``).

        Raises:
            BadInputError: a choice that cannot fit, or a chat template without
                generation markers.
        """
        return list(
            answer_log_likelihoods(self.model, self.tokenizer, prompt, choices, self.max_length)
        )

    def describe(self) -> dict[str, Any]:
        """Runner kind, model folder, device and length limit."""
        return {
            "runner": self.kind,
            "model": str(self.model_path),
            "device": str(self.device),
            "batch_size": self.batch_size,
            "max_length": self.max_length,
        }

    def close(self) -> None:
        """Drop the model (frees its memory once nothing else holds it)."""
        self.model = None
