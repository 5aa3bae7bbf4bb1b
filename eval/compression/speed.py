"""Tokens/s and first-token latency of several models, measured side by side in one run.

Every model is loaded once, then the rounds interleave them (round 1: base, variant A,
variant B; round 2: the same order...), so a machine that gets busier or quieter during the
run slows every model alike; the report gives each model's median over rounds. Batch 1,
greedy, a fixed chat prompt built from each model's own chat template, ``new_tokens``
generated with the end-of-turn token suppressed (``min_new_tokens``) so every model
generates the same number of tokens. ``first_token_s`` is the time of a generation of one
token (prefill + one step); ``tokens_per_s`` is ``new_tokens`` over the time of the whole
generation.

A model folder runs with torch (``load_causal_lm`` and ``generate``); an OpenVINO IR folder
(``compress make --method openvino-*``) runs with ``openvino-genai``'s ``LLMPipeline``, as
``serve --backend openvino`` runs it, fed the same prompt ids (the folder's own tokenizer
files) with ``min_new_tokens`` set alike. ``openvino_precision`` picks its compile
properties (:func:`llm.models.openvino_ir.compile_properties`: ``"default"`` as served).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from eval.compression.memory import PROMPT
from llm.errors import BadInputError
from llm.models.loading import load_causal_lm, load_tokenizer
from llm.models.openvino_ir import Precision, compile_properties, is_openvino_ir


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


class TimedModel(Protocol):
    """A loaded model that generates the fixed prompt and says how long it took."""

    def seconds(self, new_tokens: int) -> float:
        """Wall time of one greedy generation of exactly ``new_tokens`` tokens."""
        ...


class _TorchModel:
    def __init__(self, folder: Path) -> None:
        model, tokenizer = load_causal_lm(folder)
        model.eval()
        model.generation_config.pad_token_id = tokenizer.pad_token_id
        self.model: Any = model
        self.ids = _prompt_ids(tokenizer)

    def seconds(self, new_tokens: int) -> float:
        import torch

        started = time.perf_counter()
        with torch.inference_mode():
            out = self.model.generate(
                self.ids,
                attention_mask=torch.ones_like(self.ids),
                max_new_tokens=new_tokens,
                min_new_tokens=new_tokens,
                do_sample=False,
            )
        seconds = time.perf_counter() - started
        _check_count(out.shape[1] - self.ids.shape[1], new_tokens)
        return seconds


class _OpenVINOModel:
    def __init__(self, folder: Path, precision: Precision) -> None:
        try:
            import openvino
            import openvino_genai
        except ImportError as exc:
            raise BadInputError(
                f"{folder}: timing an OpenVINO IR needs openvino-genai: "
                "pip install 'clinical-llm[openvino]'"
            ) from exc
        try:
            self.pipeline = openvino_genai.LLMPipeline(
                str(folder), "CPU", **compile_properties(precision)
            )
        except RuntimeError as exc:
            raise BadInputError(f"{folder}: openvino-genai cannot load it: {exc}") from exc
        ids = _prompt_ids(load_tokenizer(folder))
        self.ids = openvino.Tensor(ids.numpy())

    def seconds(self, new_tokens: int) -> float:
        config = self.pipeline.get_generation_config()
        config.max_new_tokens = new_tokens
        config.min_new_tokens = new_tokens
        config.do_sample = False
        config.apply_chat_template = False  # the ids are already the rendered chat
        started = time.perf_counter()
        out = self.pipeline.generate(self.ids, config)
        seconds = time.perf_counter() - started
        _check_count(len(out.tokens[0]), new_tokens)
        return seconds


def _check_count(generated: int, new_tokens: int) -> None:
    if generated != new_tokens:
        raise BadInputError(f"generated {generated} tokens, not {new_tokens}")


def load_timed(folder: Path, *, openvino_precision: Precision = "default") -> TimedModel:
    """The model in ``folder`` ready to time: torch, or openvino-genai for an IR folder.

    Raises:
        BadInputError: a folder that does not load.
    """
    if is_openvino_ir(folder):
        return _OpenVINOModel(folder, openvino_precision)
    return _TorchModel(folder)


def measure_speed(
    models: Mapping[str, Path],
    *,
    new_tokens: int = 64,
    rounds: int = 3,
    warmup: int = 1,
    openvino_precision: Precision = "default",
) -> dict[str, Speed]:
    """Time every model folder in ``models`` side by side (module docstring).

    Args:
        models: name -> model folder (the uncompressed model first, by convention).
        new_tokens: tokens generated per timed generation.
        rounds: timed rounds; each model's medians are reported.
        warmup: untimed generations per model before the first round.
        openvino_precision: compile properties of the IR folders among ``models``.

    Returns:
        name -> :class:`Speed`.

    Raises:
        BadInputError: a folder that does not load; ``new_tokens`` or ``rounds`` below 1.
    """
    if new_tokens < 1 or rounds < 1:
        raise BadInputError("new_tokens and rounds must be at least 1")
    loaded = {
        name: load_timed(folder, openvino_precision=openvino_precision)
        for name, folder in models.items()
    }
    for model in loaded.values():
        for _ in range(warmup):
            model.seconds(new_tokens)
    totals: dict[str, list[float]] = {name: [] for name in loaded}
    firsts: dict[str, list[float]] = {name: [] for name in loaded}
    for _ in range(rounds):
        for name, model in loaded.items():
            firsts[name].append(model.seconds(1))
            totals[name].append(model.seconds(new_tokens))
    return {
        name: Speed(
            tokens_per_s=new_tokens / statistics.median(totals[name]),
            first_token_s=statistics.median(firsts[name]),
            rounds=rounds,
        )
        for name in loaded
    }
