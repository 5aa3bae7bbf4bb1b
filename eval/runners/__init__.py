"""Model runners: the same evaluation on a local model, an OpenVINO IR, vLLM, or an endpoint.

:data:`RUNNERS` is the project's small registry (lazy ``"module:Name"``
entries, "did you mean" for unknown names), so naming a runner never imports
torch or vLLM before it is used.
"""

from __future__ import annotations

from typing import Any

from eval.runners.base import GenerationParams, Prompt, Runner, RunnerOptions, ShardedRunner
from llm.registry import Registry

RUNNERS: Registry[Any] = Registry(
    "runner",
    {
        "local": "eval.runners.local:LocalRunner",
        "vllm": "eval.runners.vllm:VLLMRunner",
        "openvino": "eval.runners.openvino:OpenVINORunner",
        "openai": "eval.runners.openai_http:OpenAIHTTPRunner",
    },
)


DEFAULTS = RunnerOptions()


def runner_kind(*, runner: str | None, endpoint: str | None) -> str:
    """The runner to use: the one named, else ``openai`` for an endpoint and ``local`` otherwise.

    Raises:
        BadInputError: an unknown runner name (with "did you mean").
    """
    kind = runner or ("openai" if endpoint is not None else "local")
    RUNNERS.check(kind)
    return kind


def make_runner(
    *,
    model: str | None = DEFAULTS.model,
    endpoint: str | None = DEFAULTS.endpoint,
    runner: str | None = DEFAULTS.runner,
    model_name: str | None = DEFAULTS.model_name,
    api_key_env: str | None = DEFAULTS.api_key_env,
    batch_size: int = DEFAULTS.batch_size,
    concurrency: int = DEFAULTS.concurrency,
    seed: int = 0,
    ray_address: str | None = DEFAULTS.ray_address,
    workers: int = DEFAULTS.workers,
    cpus_per_worker: int = DEFAULTS.cpus_per_worker,
    gpus_per_worker: float = DEFAULTS.gpus_per_worker,
) -> Runner | ShardedRunner:
    """The runner for a model folder (``local``, ``vllm`` or, for an OpenVINO IR folder,
    ``openvino``) or an endpoint (``openai``).

    Arguments are :class:`~eval.runners.base.RunnerOptions`' fields, plus the
    ``seed`` of sampled decoding (vllm). With ``ray_address`` the local runner runs on
    Ray Data actors (:class:`~eval.runners.local_on_ray.LocalRunnerOnRay`).

    Raises:
        BadInputError: neither or both of ``model``/``endpoint``, a runner that
            does not fit the target, an unknown runner name, ``ray_address`` with
            another runner than ``local``, or the runner's own errors (missing model
            folder, missing vLLM, unreachable endpoint, Ray not installed).
    """
    from llm.errors import BadInputError

    if (model is None) == (endpoint is None):
        raise BadInputError("give exactly one of --model PATH or --endpoint URL")
    kind = runner_kind(runner=runner, endpoint=endpoint)
    if ray_address is not None and kind != "local":
        raise BadInputError(
            f"--ray-address runs the local runner on Ray actors; --runner {kind} cannot use it"
        )
    if endpoint is not None:
        if kind != "openai":
            raise BadInputError(f"--runner {kind} runs a model folder; use --model PATH")
        return RUNNERS.get("openai")(
            endpoint, model_name=model_name, api_key_env=api_key_env, concurrency=concurrency
        )
    if kind == "openai":
        raise BadInputError("--runner openai needs --endpoint URL")
    if kind == "vllm":
        return RUNNERS.get("vllm")(model, seed=seed)
    if kind == "openvino":
        return RUNNERS.get("openvino")(model)
    if ray_address is not None and model is not None:  # model: checked above
        from eval.runners.local_on_ray import LocalRunnerOnRay

        return LocalRunnerOnRay(
            model,
            batch_size=batch_size,
            address=ray_address,
            workers=workers,
            cpus_per_worker=cpus_per_worker,
            gpus_per_worker=gpus_per_worker,
        )
    return RUNNERS.get("local")(model, batch_size=batch_size)


__all__ = [
    "RUNNERS",
    "GenerationParams",
    "Prompt",
    "Runner",
    "RunnerOptions",
    "ShardedRunner",
    "make_runner",
    "runner_kind",
]
