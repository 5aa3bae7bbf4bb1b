"""OpenVINO runner: an IR folder (``compress make --method openvino-*``) run with the OpenVINO
runtime in this process (:class:`llm.models.openvino_ir.OpenVINOCausalLM`).

Prompts are rendered and cut by the folder's own tokenizer files exactly as the local
runner does (:func:`eval.runners.prompting.encode_prompt`), and constrained choices are
scored on the same tokens (:func:`llm.models.openvino_ir.ir_answer_log_likelihoods`), so a
torch model and its IR are compared example for example (``compress report``; on its own:
``eval run --runner openvino --model IR``). Generation is
one prompt at a time, greedy or seeded sampling, stopped at the end-of-turn token.
``precision`` is ``"default"`` (the runtime's defaults, as ``serve --backend openvino``
computes) or ``"f32"``.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.runners.base import Advance, GenerationParams, Prompt, truncate_at_stop
from eval.runners.prompting import encode_prompt
from llm.errors import BadInputError
from llm.models.openvino_ir import OpenVINOCausalLM, Precision, ir_answer_log_likelihoods


class OpenVINORunner:
    """An OpenVINO IR folder run in this process.

    Args:
        model_path: IR folder (``openvino_model.xml`` beside the source's tokenizer files).
        precision: ``"default"`` (as served) or ``"f32"``.
        threads: inference threads (default: OpenVINO's choice).
        batch_size: accepted for the runner options' sake; prompts run one at a time.

    Raises:
        BadInputError: not an IR folder, openvino missing, or a tokenizer without a chat
            template.
    """

    kind = "openvino"
    supports_images = False
    supports_loglikelihood = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        precision: Precision = "default",
        threads: int | None = None,
        batch_size: int = 1,
    ) -> None:
        self.model_path = Path(model_path)
        self.precision = precision
        self.model: OpenVINOCausalLM | None = OpenVINOCausalLM(
            self.model_path, precision=precision, threads=threads
        )
        self.tokenizer = self.model.tokenizer
        if not getattr(self.tokenizer, "chat_template", None):
            raise BadInputError(f"{self.model_path}: the tokenizer has no chat template")
        self.max_length = self.model.max_length()
        self.runtime = dict(self.model.runtime)
        self.truncated_prompts = 0
        self.chunk_size = batch_size

    def _model(self) -> OpenVINOCausalLM:
        if self.model is None:
            raise BadInputError(f"{self.model_path}: the runner was closed")
        return self.model

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, advance: Advance | None = None
    ) -> list[str]:
        """One completion per prompt, in order, cut at ``params.stop``.

        Raises:
            BadInputError: a prompt that cannot fit the model's length.
        """
        model = self._model()
        budget = self.max_length - params.max_tokens
        if budget < 1:
            raise BadInputError(
                f"max_tokens {params.max_tokens} leaves no room for a prompt in the model's "
                f"{self.max_length} tokens"
            )
        texts = []
        for prompt in prompts:
            ids, truncated = encode_prompt(self.tokenizer, prompt, budget)
            self.truncated_prompts += truncated
            new = model.generate_ids(
                ids, params.max_tokens, temperature=params.temperature, seed=params.seed
            )
            text = str(self.tokenizer.decode(new, skip_special_tokens=True))
            texts.append(truncate_at_stop(text, params.stop))
            if advance is not None:
                advance(1)
        return texts

    def loglikelihood(self, prompt: Prompt, choices: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each choice's answer tokens (and its end-of-turn).

        Raises:
            BadInputError: a choice that cannot fit, or a chat template without
                generation markers.
        """
        return ir_answer_log_likelihoods(self._model(), prompt, choices, self.max_length)

    def describe(self) -> dict[str, Any]:
        """Runner kind, IR folder, what the runtime computes with, and the length limit."""
        return {
            "runner": self.kind,
            "model": str(self.model_path),
            "precision": self.precision,
            "openvino": self.runtime,
            "max_length": self.max_length,
        }

    def close(self) -> None:
        """Drop the compiled model."""
        self.model = None
