"""The Triton Python-backend model of an exported repository (copied there as ``1/model.py``).

``clinical-llm export RUN --triton --out REPO`` writes this file verbatim
next to the model folder (``1/hf_model``); Triton's Python backend loads it
and calls :class:`TritonPythonModel`. It must stay self-contained: it imports
only numpy, torch, transformers and Triton's ``triton_python_backend_utils``
(present inside the server only, so the decoding logic in
:class:`TextGenerator` is importable and tested without Triton).

Requests carry either ``prompt`` (text, tokenised as is) or ``messages``
(OpenAI chat messages as JSON, rendered with the model's own chat template
here, so clients need no tokenizer), plus ``max_tokens`` and optional
``temperature`` (0 = greedy), ``top_p``, ``seed`` and ``stop`` strings. In
decoupled mode (the default export) each request is answered with a stream
of responses: ``text`` holds the new text, ``token_count`` the new tokens,
``prompt_tokens`` the prompt length, and the last response has a
``finish_reason`` of ``stop`` or ``length``. Without decoupled mode one
response holds the whole completion.

Errors a client caused start with ``bad_request:`` so a gateway can answer
400; messages never contain prompt or completion text.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

try:  # provided by the Triton Python backend at run time
    import triton_python_backend_utils as pb_utils
except ImportError:  # imported outside Triton (tests, the export itself)
    pb_utils = None

MODEL_FOLDER = "hf_model"
BAD_REQUEST = "bad_request: "


class GenerationInputError(ValueError):
    """A request the model cannot serve (bad field, too long); the client's fault."""


@dataclass(frozen=True)
class Decoding:
    """Decoding settings of one request."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()


@dataclass
class Delta:
    """New text of a request since the last delta, and possibly its end."""

    text: str
    token_count: int
    prompt_tokens: int
    finish_reason: str = ""


@dataclass
class _DetokenizeState:
    ids: list[int] = field(default_factory=list)
    emitted: str = ""
    pending_tokens: int = 0


def _held_back(text: str, stops: tuple[str, ...]) -> int:
    """How many trailing characters of ``text`` could begin a stop string (not sent yet)."""
    longest = 0
    for stop in stops:
        for size in range(min(len(stop) - 1, len(text)), 0, -1):
            if text.endswith(stop[:size]):
                longest = max(longest, size)
                break
    return longest


class TextGenerator:
    """Token-by-token decoding of a causal LM with a KV cache, streaming text deltas.

    Args:
        folder: a transformers model folder (safetensors weights, tokenizer with
            chat template); loaded with local files only, no remote code.
        device: torch device to run on.
    """

    def __init__(self, folder: Path, device: str = "cpu") -> None:
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.tokenizer: Any = AutoTokenizer.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False
        )
        loader: Any = AutoModelForCausalLM
        self.model: Any = loader.from_pretrained(
            str(folder), local_files_only=True, trust_remote_code=False, use_safetensors=True
        )
        self.model.to(device)
        self.model.eval()
        self.device = device
        config = self.model.config
        self.max_model_len = int(getattr(config, "max_position_embeddings", 0) or 0) or None
        eos: Any = self.model.generation_config.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        if self.tokenizer.eos_token_id is not None:
            eos_ids.add(int(self.tokenizer.eos_token_id))
        self.eos_ids = eos_ids

    def prompt_ids(self, prompt: str | None, messages: list[dict[str, Any]] | None) -> list[int]:
        """Token ids of a text prompt, or of chat messages after the chat template.

        Raises:
            GenerationInputError: neither or both given, or messages the template rejects.
        """
        if (prompt is None) == (messages is None):
            raise GenerationInputError("give exactly one of the inputs 'prompt' and 'messages'")
        if prompt is not None:
            return list(self.tokenizer(prompt)["input_ids"])
        try:
            encoded = self.tokenizer.apply_chat_template(
                messages, add_generation_prompt=True, tokenize=True, return_dict=True
            )
        except Exception as exc:  # jinja errors name the template, not the content
            raise GenerationInputError(
                f"'messages' cannot be rendered with the chat template ({type(exc).__name__})"
            ) from None
        return list(encoded["input_ids"])

    def _next_token(self, logits: torch.Tensor, decoding: Decoding, rng: torch.Generator) -> int:
        if decoding.temperature <= 0:
            return int(torch.argmax(logits).item())
        probs = torch.softmax(logits.float() / decoding.temperature, dim=-1)
        if decoding.top_p < 1.0:
            sorted_probs, order = torch.sort(probs, descending=True)
            # keep the smallest prefix whose mass reaches top_p (the first token always)
            outside = torch.cumsum(sorted_probs, dim=-1) - sorted_probs >= decoding.top_p
            outside[0] = False  # also should a tiny top_p reach the comparison as 0
            sorted_probs[outside] = 0.0
            probs = torch.zeros_like(probs).scatter(0, order, sorted_probs)
        return int(torch.multinomial(probs, 1, generator=rng).item())

    def generate(
        self,
        ids: list[int],
        decoding: Decoding,
        cancelled: Callable[[], bool] = lambda: False,
    ) -> Iterator[Delta]:
        """Decode after ``ids``, yielding text deltas; the last one has ``finish_reason``.

        Text that could be the start of a stop string, or an incomplete UTF-8
        character, is held back until it is known; a stop string ends the
        output and is not part of it (as in the OpenAI API).

        Args:
            ids: prompt token ids.
            decoding: sampling settings.
            cancelled: polled before each token; True ends decoding without a last delta.

        Raises:
            GenerationInputError: empty prompt, or prompt plus ``max_tokens`` over the context.
        """
        if not ids:
            raise GenerationInputError("the prompt is empty")
        if decoding.max_tokens < 1:
            raise GenerationInputError("'max_tokens' must be at least 1")
        if self.max_model_len is not None and len(ids) + decoding.max_tokens > self.max_model_len:
            raise GenerationInputError(
                f"prompt ({len(ids)} tokens) plus max_tokens ({decoding.max_tokens}) exceeds "
                f"the model's context of {self.max_model_len} tokens"
            )
        rng = torch.Generator(device=self.device)
        if decoding.seed is not None:
            rng.manual_seed(decoding.seed)
        else:
            rng.seed()
        state = _DetokenizeState()
        prompt_tokens = len(ids)
        past: Any = None
        step_input = torch.tensor([ids], device=self.device)
        for produced in range(1, decoding.max_tokens + 1):
            if cancelled():
                return
            with torch.no_grad():
                out = self.model(input_ids=step_input, past_key_values=past, use_cache=True)
            past = out.past_key_values
            token = self._next_token(out.logits[0, -1], decoding, rng)
            if token in self.eos_ids:
                yield self._flush(state, decoding, prompt_tokens, final="stop")
                return
            state.ids.append(token)
            state.pending_tokens += 1
            step_input = torch.tensor([[token]], device=self.device)
            text = self.tokenizer.decode(state.ids, skip_special_tokens=True)
            cut = min((i for i in (text.find(s) for s in decoding.stop if s) if i >= 0), default=-1)
            if cut >= 0:
                yield self._delta(state, text[:cut], prompt_tokens, "stop")
                return
            if produced == decoding.max_tokens:
                yield self._delta(state, text, prompt_tokens, "length")
                return
            if text.endswith("\ufffd"):
                continue  # part of a multi-byte character: wait for the rest
            safe = text[: len(text) - _held_back(text, decoding.stop)]
            if len(safe) > len(state.emitted):
                yield self._delta(state, safe, prompt_tokens, "")

    def _delta(self, state: _DetokenizeState, upto: str, prompt_tokens: int, final: str) -> Delta:
        new = upto[len(state.emitted) :] if upto.startswith(state.emitted) else ""
        delta = Delta(new, state.pending_tokens, prompt_tokens, final)
        state.emitted = upto if upto.startswith(state.emitted) else state.emitted
        state.pending_tokens = 0
        return delta

    def _flush(
        self, state: _DetokenizeState, decoding: Decoding, prompt_tokens: int, final: str
    ) -> Delta:
        # held-back text that never became a stop string is output after all
        text = self.tokenizer.decode(state.ids, skip_special_tokens=True) if state.ids else ""
        return self._delta(state, text, prompt_tokens, final)


# ------------------------------------------------------------------ Triton glue


def _optional(request: Any, name: str) -> np.ndarray | None:
    tensor = pb_utils.get_input_tensor_by_name(request, name)
    return None if tensor is None else tensor.as_numpy()


def _scalar(request: Any, name: str, default: Any) -> Any:
    value = _optional(request, name)
    if value is None or value.size == 0:
        return default
    if value.size != 1:
        raise GenerationInputError(f"input '{name}' must hold one value, got {value.size}")
    return value.reshape(-1)[0].item()


def _text(request: Any, name: str) -> str | None:
    value = _optional(request, name)
    if value is None or value.size == 0:
        return None
    item = value.reshape(-1)[0]
    return item.decode("utf-8") if isinstance(item, bytes) else str(item)


def read_request(request: Any) -> tuple[str | None, list[dict[str, Any]] | None, Decoding]:
    """The prompt or messages and the decoding settings of a Triton request.

    Raises:
        GenerationInputError: a field with the wrong shape or value.
    """
    raw_messages = _text(request, "messages")
    messages = None
    if raw_messages is not None:
        try:
            messages = json.loads(raw_messages)
        except json.JSONDecodeError:
            raise GenerationInputError("input 'messages' is not valid JSON") from None
        if not isinstance(messages, list):
            raise GenerationInputError("input 'messages' must be a JSON list of messages")
    stop_values = _optional(request, "stop")
    stop = tuple(
        s.decode("utf-8") if isinstance(s, bytes) else str(s)
        for s in (stop_values.reshape(-1) if stop_values is not None else [])
    )
    seed = _scalar(request, "seed", None)
    decoding = Decoding(
        max_tokens=int(_scalar(request, "max_tokens", 16)),
        temperature=float(_scalar(request, "temperature", 1.0)),
        top_p=float(_scalar(request, "top_p", 1.0)),
        seed=None if seed is None or int(seed) < 0 else int(seed),
        stop=tuple(s for s in stop if s),
    )
    if not 0.0 < decoding.top_p <= 1.0:
        raise GenerationInputError("input 'top_p' must be in (0, 1]")
    return _text(request, "prompt"), messages, decoding


def _response(delta: Delta) -> Any:
    outputs = [
        pb_utils.Tensor("text", np.array([delta.text.encode("utf-8")], dtype=np.object_)),
        pb_utils.Tensor(
            "finish_reason", np.array([delta.finish_reason.encode("utf-8")], dtype=np.object_)
        ),
        pb_utils.Tensor("token_count", np.array([delta.token_count], dtype=np.int32)),
        pb_utils.Tensor("prompt_tokens", np.array([delta.prompt_tokens], dtype=np.int32)),
    ]
    return pb_utils.InferenceResponse(output_tensors=outputs)


def _merged(deltas: list[Delta], prompt_tokens: int) -> Delta:
    return Delta(
        text="".join(d.text for d in deltas),
        token_count=sum(d.token_count for d in deltas),
        prompt_tokens=prompt_tokens,
        finish_reason=deltas[-1].finish_reason if deltas else "stop",
    )


class TritonPythonModel:
    """Entry point of Triton's Python backend."""

    def initialize(self, args: dict[str, str]) -> None:
        """Load the model folder beside this file (on the instance's GPU when it has one)."""
        config = json.loads(args["model_config"])
        self.decoupled = pb_utils.using_decoupled_model_transaction_policy(config)
        folder = Path(args["model_repository"]) / args["model_version"] / MODEL_FOLDER
        device = "cpu"
        if args.get("model_instance_kind") == "GPU" and torch.cuda.is_available():
            device = f"cuda:{args['model_instance_device_id']}"
        threads = os.environ.get("CLINICAL_LLM_TRITON_THREADS")
        if threads:
            torch.set_num_threads(int(threads))
        self.generator = TextGenerator(folder, device)

    def _run(self, request: Any, cancelled: Callable[[], bool]) -> Iterator[Delta]:
        prompt, messages, decoding = read_request(request)
        ids = self.generator.prompt_ids(prompt, messages)
        yield from self.generator.generate(ids, decoding, cancelled)

    def execute(self, requests: list[Any]) -> list[Any] | None:
        """Answer each request: a stream of deltas (decoupled) or one response."""
        if not self.decoupled:
            responses = []
            for request in requests:
                try:
                    deltas = list(self._run(request, lambda: False))
                    responses.append(_response(_merged(deltas, _prompt_tokens(deltas))))
                except GenerationInputError as exc:
                    responses.append(
                        pb_utils.InferenceResponse(
                            error=pb_utils.TritonError(BAD_REQUEST + str(exc))
                        )
                    )
            return responses
        for request in requests:
            sender = request.get_response_sender()
            is_cancelled = getattr(sender, "is_cancelled", None) or (lambda: False)
            try:
                for delta in self._run(request, is_cancelled):
                    sender.send(_response(delta))
            except GenerationInputError as exc:
                error = pb_utils.TritonError(BAD_REQUEST + str(exc))
                sender.send(pb_utils.InferenceResponse(error=error))
            sender.send(flags=pb_utils.TRITONSERVER_RESPONSE_COMPLETE_FINAL)
        return None

    def finalize(self) -> None:
        """Release the model."""
        self.generator = None  # type: ignore[assignment]


def _prompt_tokens(deltas: list[Delta]) -> int:
    return deltas[0].prompt_tokens if deltas else 0
