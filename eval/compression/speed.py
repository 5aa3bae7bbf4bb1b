"""Tokens/s and first-token latency of several models, measured side by side in one run.

Every model is loaded once, then the rounds interleave them (round 1: base, variant A,
variant B; round 2: the same order...), so a machine that gets busier or quieter during the
run slows every model alike; the report gives each model's median over rounds. Batch 1,
greedy, a fixed chat prompt built from each model's own chat template, ``new_tokens``
generated with the end-of-turn token suppressed (``min_new_tokens``) so every model
generates the same number of tokens. ``first_token_s`` is the time of a generation of one
token (prefill + one step); ``tokens_per_s`` is ``new_tokens`` over the time of the whole
generation.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llm.errors import BadInputError
from llm.models.loading import load_causal_lm

PROMPT = (
    "Summarise the hospital course of a 64-year-old patient admitted with community-acquired "
    "pneumonia, treated with antibiotics and discharged on day five."
)


@dataclass(frozen=True)
class Speed:
    """One model's medians over the rounds."""

    tokens_per_s: float
    first_token_s: float
    rounds: int

    def as_json(self) -> dict[str, Any]:
        """The entry in ``report.json``."""
        return {
            "tokens_per_s": round(self.tokens_per_s, 3),
            "first_token_s": round(self.first_token_s, 5),
            "rounds": self.rounds,
        }


def _prompt_ids(tokenizer: Any) -> Any:
    messages = [{"role": "user", "content": PROMPT}]
    encoded = tokenizer.apply_chat_template(
        messages, add_generation_prompt=True, return_tensors="pt", return_dict=True
    )
    return encoded["input_ids"]


def _generate_seconds(model: Any, ids: Any, new_tokens: int) -> float:
    import torch

    started = time.perf_counter()
    with torch.inference_mode():
        out = model.generate(
            ids,
            attention_mask=torch.ones_like(ids),
            max_new_tokens=new_tokens,
            min_new_tokens=new_tokens,
            do_sample=False,
        )
    seconds = time.perf_counter() - started
    if out.shape[1] - ids.shape[1] != new_tokens:
        raise BadInputError(f"generated {out.shape[1] - ids.shape[1]} tokens, not {new_tokens}")
    return seconds


def measure_speed(
    models: Mapping[str, Path], *, new_tokens: int = 64, rounds: int = 3, warmup: int = 1
) -> dict[str, Speed]:
    """Time every model folder in ``models`` side by side (module docstring).

    Args:
        models: name -> model folder (the uncompressed model first, by convention).
        new_tokens: tokens generated per timed generation.
        rounds: timed rounds; each model's medians are reported.
        warmup: untimed generations per model before the first round.

    Returns:
        name -> :class:`Speed`.

    Raises:
        BadInputError: a folder that does not load; ``new_tokens`` or ``rounds`` below 1.
    """
    if new_tokens < 1 or rounds < 1:
        raise BadInputError("new_tokens and rounds must be at least 1")
    loaded: dict[str, tuple[Any, Any]] = {}
    for name, folder in models.items():
        model, tokenizer = load_causal_lm(folder)
        model.eval()
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        loaded[name] = (model, _prompt_ids(tokenizer))
    for model, ids in loaded.values():
        for _ in range(warmup):
            _generate_seconds(model, ids, new_tokens)
    totals: dict[str, list[float]] = {name: [] for name in loaded}
    firsts: dict[str, list[float]] = {name: [] for name in loaded}
    for _ in range(rounds):
        for name, (model, ids) in loaded.items():
            firsts[name].append(_generate_seconds(model, ids, 1))
            totals[name].append(_generate_seconds(model, ids, new_tokens))
    return {
        name: Speed(
            tokens_per_s=new_tokens / statistics.median(totals[name]),
            first_token_s=statistics.median(firsts[name]),
            rounds=rounds,
        )
        for name in loaded
    }
