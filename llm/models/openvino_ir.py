"""OpenVINO IR folders (``compress make --method openvino-*``) run with the OpenVINO runtime.

An IR folder holds ``openvino_model.xml``/``.bin``: a stateful causal LM (its KV cache lives
inside the compiled model) taking ``input_ids``, ``attention_mask``, ``position_ids`` and
``beam_idx`` and returning ``logits`` for every input position, beside the source model's
config and tokenizer files. :class:`OpenVINOCausalLM` compiles it with the ``openvino``
package in this process (the serving backend's ``openvino-genai`` brings it; no torch, no
optimum) and gives logits; :func:`ir_answer_log_likelihoods` scores constrained answers on
exactly the tokens :func:`llm.models.answer_scoring.answer_log_likelihoods` scores on torch
(the same tokenizer files, :func:`~llm.models.answer_scoring.tokenize_choices`), so a torch
model and its IR are compared answer for answer.

Precision: ``"default"`` compiles with the runtime's defaults, as ``--backend openvino``
serves (on a CPU with bf16 support OpenVINO computes in bf16, keeps the KV cache in f16 and
quantises activations of compressed weights on the fly); ``"f32"`` asks for f32 compute, an
f32 KV cache and no activation quantisation, so only the weights differ from the torch
model. :attr:`OpenVINOCausalLM.runtime` records what the compiled model actually uses.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from llm.errors import BadInputError
from llm.models.chat_tokenize import IGNORE_INDEX

IR_MODEL = "openvino_model.xml"
IR_FILES = (IR_MODEL, "openvino_model.bin")  # the model's weights on disk
INSTALL = "pip install 'clinical-llm[openvino]'"
Precision = Literal["default", "f32"]
PRECISIONS: tuple[Precision, ...] = ("default", "f32")
# compile properties read back into OpenVINOCausalLM.runtime (what the report records)
_RUNTIME_PROPERTIES = (
    "INFERENCE_PRECISION_HINT",
    "KV_CACHE_PRECISION",
    "DYNAMIC_QUANTIZATION_GROUP_SIZE",
    "INFERENCE_NUM_THREADS",
)


def is_openvino_ir(folder: str | Path) -> bool:
    """Whether ``folder`` holds an OpenVINO IR model (``openvino_model.xml``)."""
    return (Path(folder) / IR_MODEL).is_file()


def compile_properties(precision: Precision, threads: int | None = None) -> dict[str, Any]:
    """OpenVINO compile properties for ``precision`` (module docstring) and ``threads``.

    Raises:
        BadInputError: an unknown precision.
    """
    if precision not in PRECISIONS:
        raise BadInputError(f"unknown OpenVINO precision {precision!r}; known: {PRECISIONS}")
    properties: dict[str, Any] = {}
    if precision == "f32":
        properties = {
            "INFERENCE_PRECISION_HINT": "f32",
            "KV_CACHE_PRECISION": "f32",
            "DYNAMIC_QUANTIZATION_GROUP_SIZE": 0,
        }
    if threads:
        properties["INFERENCE_NUM_THREADS"] = int(threads)
    return properties


def runtime_properties(compiled: Any) -> dict[str, str]:
    """What a compiled model (or an ``openvino_genai`` pipeline's) computes with, e.g.
    ``{"inference_precision_hint": "bf16", "kv_cache_precision": "f16", ...}``."""
    found: dict[str, str] = {}
    for name in _RUNTIME_PROPERTIES:
        try:
            value = compiled.get_property(name)
        except RuntimeError:  # a device without the property
            continue
        found[name.lower()] = str(
            value.get_type_name() if hasattr(value, "get_type_name") else value
        )
    return found


class OpenVINOCausalLM:
    """A compiled IR causal LM and its tokenizer; one sequence (or one beam batch) at a time.

    Args:
        folder: IR folder (``compress make --method openvino-*``).
        precision: ``"default"`` (as served) or ``"f32"`` (module docstring).
        threads: inference threads (default: OpenVINO's choice).
        device: OpenVINO device.

    Raises:
        BadInputError: no IR in ``folder``, openvino missing, or the IR is not a stateful
            causal LM with the inputs above.
    """

    def __init__(
        self,
        folder: str | Path,
        *,
        precision: Precision = "default",
        threads: int | None = None,
        device: str = "CPU",
    ) -> None:
        self.folder = Path(folder)
        if not is_openvino_ir(self.folder):
            raise BadInputError(
                f"{self.folder}: no {IR_MODEL}; export one with `clinical-llm compress make "
                "MODEL --method openvino-int8 --out FOLDER`"
            )
        try:
            import openvino
        except ImportError as exc:
            raise BadInputError(f"OpenVINO IR needs the openvino runtime: {INSTALL}") from exc
        core = openvino.Core()
        model = core.read_model(str(self.folder / IR_MODEL))
        inputs = {port.get_any_name() for port in model.inputs}
        wanted = {"input_ids", "attention_mask", "position_ids", "beam_idx"}
        if not wanted <= inputs or not model.get_sinks():
            raise BadInputError(
                f"{self.folder}: not a stateful causal LM IR (inputs {sorted(inputs)}); "
                "export it with `compress make --method openvino-*`"
            )
        self.precision = precision
        self.compiled = core.compile_model(model, device, compile_properties(precision, threads))
        self.request = self.compiled.create_infer_request()
        # imported here: this module stays torch-free at import for the memory probe
        # (eval.compression.memory), which measures an IR as served, without torch
        from llm.models.loading import load_tokenizer

        self.tokenizer = load_tokenizer(self.folder)
        self.runtime = runtime_properties(self.compiled)
        self.runtime["device"] = device
        self._past = 0

    def reset(self) -> None:
        """Forget the KV cache: the next :meth:`forward` starts a new sequence."""
        self.request.reset_state()
        self._past = 0

    def forward(
        self, input_ids: np.ndarray, attention_mask: np.ndarray, beam_idx: np.ndarray
    ) -> np.ndarray:
        """Logits of ``input_ids`` (batch × new tokens) after the cached tokens.

        Args:
            input_ids: the new tokens, int64, one row per sequence.
            attention_mask: cached plus new positions (batch × total), 1 where attended.
            beam_idx: for each row, the cached row it continues (the KV cache is gathered
                along the batch by it, so one cached prompt serves several rows).

        Returns:
            float32 logits, batch × new tokens × vocabulary.
        """
        width = input_ids.shape[1]
        positions = np.broadcast_to(
            np.arange(self._past, self._past + width, dtype=np.int64), input_ids.shape
        )
        self.request.infer(
            {
                "input_ids": input_ids.astype(np.int64),
                "attention_mask": attention_mask.astype(np.int64),
                "position_ids": np.ascontiguousarray(positions),
                "beam_idx": beam_idx.astype(np.int32),
            }
        )
        self._past += width
        return np.asarray(self.request.get_tensor("logits").data, dtype=np.float32).copy()

    def stop_token_ids(self) -> list[int]:
        """End-of-turn (the tokenizer's eos) first, then any end token the generation
        config lists: where :meth:`generate_ids` stops, as the local runner does."""
        ids: list[int] = []
        config_path = self.folder / "generation_config.json"
        configured: Any = None
        if config_path.is_file():
            configured = json.loads(config_path.read_text(encoding="utf-8")).get("eos_token_id")
        for candidate in [
            self.tokenizer.eos_token_id,
            *(configured if isinstance(configured, list) else [configured]),
        ]:
            if isinstance(candidate, int) and candidate not in ids:
                ids.append(candidate)
        if not ids:
            raise BadInputError(f"{self.folder}: no end-of-turn token; generation could not stop")
        return ids

    def generate_ids(
        self,
        prompt_ids: Sequence[int],
        max_new_tokens: int,
        *,
        temperature: float = 0.0,
        seed: int = 0,
    ) -> list[int]:
        """New token ids after ``prompt_ids``: greedy, or sampled at ``temperature`` (no top-k
        or top-p, as the local runner samples), stopping at :meth:`stop_token_ids` (not
        returned) or after ``max_new_tokens``."""
        stops = set(self.stop_token_ids())
        rng = np.random.default_rng(seed)
        self.reset()
        ids = np.array([list(prompt_ids)], dtype=np.int64)
        beam = np.zeros(1, dtype=np.int32)
        out: list[int] = []
        logits = self.forward(ids, np.ones_like(ids), beam)[0, -1]
        while len(out) < max_new_tokens:
            if temperature > 0:
                weights = np.exp(_log_softmax(logits / temperature))
                token = int(rng.choice(len(weights), p=weights / weights.sum()))
            else:
                token = int(np.argmax(logits))
            if token in stops:
                break
            out.append(token)
            if len(out) == max_new_tokens:
                break
            step = np.array([[token]], dtype=np.int64)
            logits = self.forward(step, np.ones((1, self._past + 1), dtype=np.int64), beam)[0, -1]
        self.reset()
        return out

    def max_length(self) -> int:
        """The model's ``max_position_embeddings`` (the tokenizer's limit when smaller)."""
        config = self.folder / "config.json"
        limit = int(json.loads(config.read_text(encoding="utf-8")).get("max_position_embeddings"))
        tokenizer_limit = int(self.tokenizer.model_max_length or 0)
        return min(limit, tokenizer_limit) if 0 < tokenizer_limit < 1_000_000 else limit


def _log_softmax(logits: np.ndarray) -> np.ndarray:
    shifted = logits - logits.max(axis=-1, keepdims=True)
    return shifted - np.log(np.exp(shifted).sum(axis=-1, keepdims=True))


def ir_answer_log_likelihoods(
    model: OpenVINOCausalLM,
    prompt: list[dict[str, Any]],
    choices: Sequence[str],
    max_length: int,
) -> list[float]:
    """:func:`llm.models.answer_scoring.answer_log_likelihoods` on an IR model.

    The shared prompt runs once (batch 1); then all choices' remaining tokens run as one
    batch whose rows continue that cache (``beam_idx`` all 0), padded on the right, as the
    torch scorer repeats its cache over the choices.

    Returns:
        One log-likelihood per choice (its answer tokens and closing end-of-turn).

    Raises:
        BadInputError: a choice that cannot fit in ``max_length``, or answers that share
            no prompt tokens.
    """
    from llm.models.answer_scoring import tokenize_choices  # torch: see __init__

    rows, shared = tokenize_choices(model.tokenizer, prompt, choices, max_length)
    model.reset()
    head = np.array([rows[0]["input_ids"][:shared]], dtype=np.int64)
    first = _log_softmax(
        model.forward(head, np.ones_like(head), np.zeros(1, dtype=np.int32))[0, -1]
    )
    width = max(len(r["input_ids"]) for r in rows) - shared
    ids = np.full((len(rows), width), model.tokenizer.pad_token_id, dtype=np.int64)
    labels = np.full((len(rows), width), IGNORE_INDEX, dtype=np.int64)
    mask = np.zeros((len(rows), shared + width), dtype=np.int64)
    mask[:, :shared] = 1
    for i, r in enumerate(rows):
        n = len(r["input_ids"]) - shared
        ids[i, :n] = r["input_ids"][shared:]
        labels[i, :n] = r["labels"][shared:]
        mask[i, shared : shared + n] = 1
    logprobs = _log_softmax(model.forward(ids, mask, np.zeros(len(rows), dtype=np.int32)))
    model.reset()
    scores = []
    for i in range(len(rows)):
        total = float(first[labels[i, 0]]) if labels[i, 0] != IGNORE_INDEX else 0.0
        for j in range(1, width):
            if labels[i, j] != IGNORE_INDEX:
                total += float(logprobs[i, j - 1, labels[i, j]])
        scores.append(total)
    return scores
