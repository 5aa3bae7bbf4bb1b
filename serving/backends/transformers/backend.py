"""The embedded backend: a local Hugging Face model served in-process with continuous batching.

Loads a causal LM folder (``AutoModelForCausalLM``) or, when its
``config.json`` has a ``vision_config``, a vision-language model
(``AutoModelForImageTextToText`` + ``AutoProcessor``), always from local
safetensors with no remote code. Fine-tuned LoRA adapters from
``settings.adapters`` are loaded side by side onto one peft model and served
under their own names; the base model stays reachable with the adapters
switched off.

Requests are tokenised (chat template, images) in a thread, then handed to
the :class:`~serving.backends.transformers.batching.BatchScheduler`, whose worker thread
runs the model; this module only turns its events into
:class:`~serving.backends.base.GenerationChunk` objects on the event loop.

Options (``backend_options:`` in ``serve.yaml``): ``max_batch_size`` (16),
``max_wait_ms`` (5), ``dtype`` (``auto``/``float32``/``bfloat16``/``float16``),
``device`` (``auto``/``cpu``/``cuda``/``cuda:N``), ``torch_threads``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any, Literal

import torch

from llm.errors import BadInputError
from serving.backends.base import (
    Backend,
    BackendSettings,
    GenerationChunk,
    GenerationRequest,
    ServedModel,
    Usage,
)
from serving.backends.transformers.batching import (
    BatchScheduler,
    FailureEvent,
    PromptInputs,
    RequestHandle,
    SchedulerEvent,
)
from serving.backends.transformers.chat import render_chat, split_images
from serving.errors import BackendUnavailableError, BadRequestError, ModelNotFoundError

DTYPES: dict[str, torch.dtype | Literal["auto"]] = {
    "auto": "auto",
    "float32": torch.float32,
    "bfloat16": torch.bfloat16,
    "float16": torch.float16,
}


@dataclass(frozen=True)
class TransformersOptions:
    """The ``transformers`` backend's options (``backend_options:`` of ``serve.yaml``)."""

    max_batch_size: int = 16
    max_wait_ms: float = 5.0
    dtype: str = "auto"
    device: str = "auto"
    torch_threads: int | None = None

    @classmethod
    def from_mapping(cls, options: dict[str, Any]) -> TransformersOptions:
        """Validate backend options, reporting every problem at once.

        Args:
            options: ``settings.options``.

        Returns:
            The typed options.

        Raises:
            BadInputError: unknown keys or values out of range, all named.
        """
        known = {f.name for f in fields(cls)}
        problems = [
            f"backend_options.{key}: unknown option for the transformers backend "
            f"(known: {', '.join(sorted(known))})"
            for key in options
            if key not in known
        ]
        values = {k: v for k, v in options.items() if k in known}
        batch = values.get("max_batch_size", cls.max_batch_size)
        if not isinstance(batch, int) or isinstance(batch, bool) or batch < 1:
            problems.append("backend_options.max_batch_size: must be an integer >= 1")
        wait = values.get("max_wait_ms", cls.max_wait_ms)
        if not isinstance(wait, int | float) or isinstance(wait, bool) or wait < 0:
            problems.append("backend_options.max_wait_ms: must be a number >= 0")
        if values.get("dtype", "auto") not in DTYPES:
            problems.append(f"backend_options.dtype: must be one of {', '.join(DTYPES)}")
        device = values.get("device", "auto")
        if not isinstance(device, str) or not (
            device in ("auto", "cpu", "cuda") or device.startswith("cuda:")
        ):
            problems.append("backend_options.device: must be auto, cpu, cuda or cuda:N")
        threads = values.get("torch_threads")
        if threads is not None and (not isinstance(threads, int) or threads < 1):
            problems.append("backend_options.torch_threads: must be an integer >= 1")
        if problems:
            raise BadInputError("; ".join(problems))
        return cls(**values)


def _resolve_device(name: str) -> torch.device:
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda") and not torch.cuda.is_available():
        raise BadInputError(f"backend_options.device: {name} asked for, but no CUDA GPU is present")
    return torch.device(name)


def _check_adapter_folder(name: str, folder: Path) -> Path:
    if not (folder / "adapter_config.json").is_file():
        raise BadInputError(f"adapter {name}: {folder} has no adapter_config.json")
    if not (folder / "adapter_model.safetensors").is_file():
        # peft falls back to torch.load of adapter_model.bin, which can run pickled code
        raise BadInputError(f"adapter {name}: {folder} has no adapter_model.safetensors")
    return folder


class TransformersBackend(Backend):
    """A local model (and its LoRA adapters) run in-process with continuous batching."""

    name = "transformers"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.options = TransformersOptions.from_mapping(settings.options)
        self.scheduler: BatchScheduler | None = None
        self.multimodal = False
        self._model: Any = None  # the HF model whose forward runs (LoRA layers injected)
        self._peft: Any = None  # the PeftModel that switches adapters, when there are any
        self._adapter_ids: dict[str, str] = {}  # served name -> peft adapter name
        self._tokenizer: Any = None
        self._processor: Any = None
        self._max_len: int | None = None
        self._device = torch.device("cpu")

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Load the model and adapters (in a thread) and start the batching worker.

        Raises:
            BackendUnavailableError: the model or an adapter cannot be loaded.
        """
        try:
            await asyncio.to_thread(self._load)
        except (BadInputError, OSError, ValueError) as exc:
            raise BackendUnavailableError(f"cannot load {self.settings.model_name}: {exc}") from exc
        eos = self._model.generation_config.eos_token_id
        eos_ids = {eos} if isinstance(eos, int) else set(eos or [])
        if self._tokenizer.eos_token_id is not None:
            eos_ids.add(int(self._tokenizer.eos_token_id))
        pad = self._tokenizer.pad_token_id
        self.scheduler = BatchScheduler(
            self._forward,
            self._tokenizer,
            eos_token_ids=frozenset(eos_ids),
            pad_token_id=int(pad if pad is not None else min(eos_ids)),
            device=self._device,
            max_batch_size=self.options.max_batch_size,
            max_wait_ms=self.options.max_wait_ms,
        )
        self.scheduler.start()

    async def close(self) -> None:
        """Stop the worker (queued requests get a 503) and drop the model."""
        if self.scheduler is not None:
            await asyncio.to_thread(self.scheduler.stop)
            self.scheduler = None
        self._model = self._peft = None

    def ready(self) -> bool:
        """True once the model is loaded and the worker runs."""
        return self.scheduler is not None and self.scheduler.alive

    def _load(self) -> None:
        from llm.env import set_private_env
        from llm.models.loading import check_model_folder, load_causal_lm

        set_private_env()
        self._device = _resolve_device(self.options.device)
        threads = self.options.torch_threads
        if threads is None and self._device.type == "cpu":
            # Leave one core to the event loop (HTTP, SSE, tokenization): with every
            # core in torch's pool the loop and the spinning OpenMP threads fight,
            # which measured 3.1x instead of 6x batching speed-up on 2 cores.
            threads = max(1, (os.cpu_count() or 2) - 1)
        if threads is not None:
            torch.set_num_threads(threads)
        folder = check_model_folder(self.settings.model_path)
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
        dtype = DTYPES[self.options.dtype]
        self.multimodal = "vision_config" in config
        model: Any
        if self.multimodal:
            from transformers import AutoModelForImageTextToText, AutoProcessor

            self._processor = AutoProcessor.from_pretrained(
                folder, local_files_only=True, trust_remote_code=False
            )
            self._tokenizer = self._processor.tokenizer
            model = AutoModelForImageTextToText.from_pretrained(
                folder,
                local_files_only=True,
                use_safetensors=True,
                trust_remote_code=False,
                dtype=dtype,
            )
        else:
            model, self._tokenizer = load_causal_lm(folder, dtype=dtype)
        model.to(self._device).eval()
        text_config = config.get("text_config", config)
        self._max_len = text_config.get("max_position_embeddings")
        self._model = model
        if self.settings.adapters:
            self._load_adapters(model)

    def _load_adapters(self, model: Any) -> None:
        from peft import PeftModel

        peft_model: Any = None
        for i, (served, path) in enumerate(self.settings.adapters.items()):
            folder = _check_adapter_folder(served, Path(path))
            # served names may hold characters peft cannot use as module keys ('.')
            internal = f"adapter_{i}"
            if peft_model is None:
                peft_model = PeftModel.from_pretrained(
                    model, str(folder), adapter_name=internal, is_trainable=False
                )
            else:
                peft_model.load_adapter(str(folder), adapter_name=internal, is_trainable=False)
            self._adapter_ids[served] = internal
        peft_model.to(self._device).eval()
        self._peft = peft_model
        # LoRA layers are injected into the wrapped model's modules; calling it directly
        # runs the active adapter and keeps the HF forward signature (pixel_values, ...)
        self._model = peft_model.base_model.model

    # ------------------------------------------------------------------ model side

    @contextlib.contextmanager
    def _adapter_scope(self, adapter: str | None) -> Iterator[None]:
        if self._peft is None:
            yield
        elif adapter is None:
            with self._peft.disable_adapter():
                yield
        else:
            self._peft.set_adapter(self._adapter_ids[adapter])
            yield

    def _forward(
        self,
        input_ids: torch.Tensor,
        attention_mask: torch.Tensor,
        position_ids: torch.Tensor,
        cache: Any,
        pixel_values: torch.Tensor | None,
        adapter: str | None,
    ) -> torch.Tensor:
        kwargs: dict[str, Any] = {
            "input_ids": input_ids,
            "attention_mask": attention_mask,
            "position_ids": position_ids,
            "past_key_values": cache,
            "use_cache": True,
            "logits_to_keep": 1,
        }
        if pixel_values is not None:
            kwargs["pixel_values"] = pixel_values.to(self._model.dtype)
        with self._adapter_scope(adapter):
            output = self._model(**kwargs)
        logits: torch.Tensor = output.logits[:, -1, :]
        return logits

    # ------------------------------------------------------------------ requests

    def models(self) -> list[ServedModel]:
        """The base model, then each adapter (its parent is the base)."""
        base = self.settings.model_name
        served = [ServedModel(base, self.settings.model_path, max_model_len=self._max_len)]
        served += [
            ServedModel(name, str(path), parent=base, max_model_len=self._max_len)
            for name, path in self.settings.adapters.items()
        ]
        return served

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        """Prompt tokens after the chat template (images expanded), or None before start.

        Raises:
            BadRequestError: the messages or images are invalid.
        """
        if self._tokenizer is None:
            return None
        return len(self._prepare(request).token_ids)

    def _adapter_of(self, request: GenerationRequest) -> str | None:
        adapter = request.adapter
        if adapter is None and request.model in self.settings.adapters:
            adapter = request.model
        if adapter is not None and adapter not in self._adapter_ids:
            raise ModelNotFoundError(f"model {adapter!r} is not served here", param="model")
        if adapter is None and request.model != self.settings.model_name:
            raise ModelNotFoundError(f"model {request.model!r} is not served here", param="model")
        return adapter

    def _prepare(self, request: GenerationRequest) -> PromptInputs:
        """Tokenise the request (chat template, images) and check it fits the context."""
        images: list[Any] = []
        if request.messages is not None:
            messages, images = split_images(request.messages)
            if images and not self.multimodal:
                raise BadRequestError(
                    f"model {request.model!r} does not accept images (image_url parts)",
                    param="messages",
                )
            text = render_chat(self._processor or self._tokenizer, messages)
            add_special_tokens = False  # the template already wrote BOS
        else:
            text = request.prompt or ""
            add_special_tokens = True
        pixel_values = None
        if self._processor is not None:
            try:
                encoded = self._processor(
                    text=text,
                    images=images or None,
                    return_tensors="pt",
                    add_special_tokens=add_special_tokens,
                )
            except ValueError:
                raise BadRequestError(
                    "the image placeholders in the prompt do not match the images sent",
                    param="messages",
                ) from None
            token_ids = encoded["input_ids"][0].tolist()
            pixel_values = encoded.get("pixel_values")
        else:
            token_ids = self._tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"]
        if not token_ids:
            raise BadRequestError("prompt: must not be empty", param="prompt")
        limit = self._max_len
        if limit is not None and len(token_ids) + request.sampling.max_tokens > limit:
            raise BadRequestError(
                f"prompt ({len(token_ids)} tokens) plus max_tokens "
                f"({request.sampling.max_tokens}) exceeds the context of {limit} tokens",
                param="max_tokens",
            )
        return PromptInputs(list(token_ids), pixel_values)

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the request's choices as text deltas; the last chunk carries usage.

        Raises:
            BackendUnavailableError: the backend is not started or failed.
            ModelNotFoundError: the model or adapter is not served here.
            BadRequestError: invalid messages/images, or the prompt does not fit.
        """
        scheduler = self.scheduler
        if scheduler is None or not scheduler.alive:
            raise BackendUnavailableError("the transformers backend is not ready")
        if request.sampling.max_tokens < 1 or request.sampling.n < 1:
            raise BadRequestError("max_tokens and n must be at least 1", param="max_tokens")
        adapter = self._adapter_of(request)
        prompt = await asyncio.to_thread(self._prepare, request)
        loop = asyncio.get_running_loop()
        events: asyncio.Queue[SchedulerEvent] = asyncio.Queue()

        def emit(event: SchedulerEvent) -> None:
            loop.call_soon_threadsafe(events.put_nowait, event)

        handle = RequestHandle(request.request_id, prompt, request.sampling, emit, adapter)
        scheduler.submit(handle)
        open_choices = request.sampling.n
        completion_tokens = 0
        try:
            while open_choices:
                event = await events.get()
                if isinstance(event, FailureEvent):
                    open_choices = 0
                    raise event.error
                completion_tokens += event.token_count
                usage = None
                if event.finish_reason is not None:
                    open_choices -= 1
                    if open_choices == 0:
                        usage = Usage(len(prompt.token_ids), completion_tokens)
                yield GenerationChunk(
                    event.index, event.text, event.token_count, event.finish_reason, usage
                )
        finally:
            if open_choices:
                # the consumer went away (disconnect, timeout, aclose): free the batch rows
                scheduler.cancel(handle)
