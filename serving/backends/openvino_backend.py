"""``--backend openvino``: OpenVINO IR served in the gateway's process by ``openvino-genai``.

``BackendSettings.model_path`` is a folder written by ``clinical-llm compress make --method
openvino-*`` (docs/compression.md): ``openvino_model.xml`` beside ``openvino_tokenizer.xml``
and ``openvino_detokenizer.xml`` (``openvino-tokenizers``), so neither transformers nor torch
is needed here. ``openvino-genai``'s ``LLMPipeline`` runs the model; options (the
``backend_options:`` section of serve.yaml):

* ``device``: OpenVINO device (default ``CPU``);
* ``threads``: inference threads (default: OpenVINO's choice, all cores);
* ``max_model_len``: context length (default ``max_position_embeddings`` of ``config.json``).

The prompt is tokenised here (chat messages through the chat template stored in the
tokenizer's runtime info), so the gateway's 400 for prompt plus ``max_tokens`` beyond the
context works as with the other backends. Generation runs in a worker thread, one request at
a time (an ``LLMPipeline`` is not re-entrant; the gateway's queue holds the rest); tokens come
back through a :class:`openvino_genai.StreamerBase` and are detokenised incrementally, so
streamed and non-streamed text are the same. Stop strings are found here (the text up to the
stop is sent). Closing the stream makes the streamer answer ``CANCEL`` at the next token.
``n > 1`` runs the choices one after another (seeds ``seed + i``). Adapters and image parts
are refused.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from pathlib import Path
from typing import Any, Literal, cast

from serving.backends.base import (
    Backend,
    BackendSettings,
    ChatMessage,
    GenerationChunk,
    GenerationRequest,
    ServedModel,
    Usage,
    refuse_non_text_parts,
)
from serving.errors import BackendUnavailableError, BadRequestError

INSTALL = "pip install 'clinical-llm[openvino]'"
NEEDED_FILES = ("openvino_model.xml", "openvino_tokenizer.xml", "openvino_detokenizer.xml")
_DONE = object()


def check_ir_folder(path: str | Path) -> Path:
    """The folder, checked to hold an exported model with its OpenVINO tokenizer.

    Raises:
        BackendUnavailableError: not a folder, or a file the pipeline needs is missing.
    """
    folder = Path(path)
    missing = [name for name in NEEDED_FILES if not (folder / name).is_file()]
    if missing:
        raise BackendUnavailableError(
            f"openvino backend: {folder} lacks {', '.join(missing)}; export the model with "
            "`clinical-llm compress make MODEL --method openvino-int8 --out FOLDER`"
        )
    return folder


def text_messages(messages: list[ChatMessage]) -> list[dict[str, str]]:
    """Messages with their content as one string, for the chat template.

    Raises:
        BadRequestError: a content part that is not text (``param`` names it).
    """
    refuse_non_text_parts(messages, "openvino")
    plain: list[dict[str, str]] = []
    for message in messages:
        content = message.get("content")
        if isinstance(content, list):
            content = "".join(str(part.get("text", "")) for part in content)
        plain.append({"role": str(message.get("role")), "content": content or ""})
    return plain


def _context_length(folder: Path, options: dict[str, Any]) -> int | None:
    if options.get("max_model_len") is not None:
        return int(options["max_model_len"])
    try:
        config = json.loads((folder / "config.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    value = config.get("max_position_embeddings")
    return int(value) if isinstance(value, int) else None


class _Choice:
    """Turns the token ids of one choice into text deltas; finds stop strings."""

    def __init__(self, decode: Callable[[list[int]], str], stops: tuple[str, ...]) -> None:
        self.decode = decode
        self.stops = stops
        self.ids: list[int] = []
        self.sent = ""
        self.stopped = False
        # text that could be the start of a stop string is held back until it is not
        self.hold = max((len(s) for s in stops), default=1) - 1

    def add(self, token: int) -> str:
        """The new text after ``token``; sets ``stopped`` when a stop string appeared."""
        self.ids.append(token)
        text = self.decode(self.ids)
        for stop in self.stops:
            at = text.find(stop, max(0, len(self.sent) - len(stop)))
            if at >= 0:
                self.stopped = True
                return self._emit(text[:at])
        if text.endswith("\ufffd"):  # half a multi-byte character: wait for the rest
            return ""
        return self._emit(text[: len(text) - self.hold] if self.hold else text)

    def flush(self) -> str:
        """What was held back, at the end of the choice."""
        if self.stopped:
            return ""
        return self._emit(self.decode(self.ids))

    def _emit(self, text: str) -> str:
        if len(text) <= len(self.sent) or not text.startswith(self.sent):
            return ""
        delta, self.sent = text[len(self.sent) :], text
        return delta


class OpenVINOBackend(Backend):
    """An ``openvino_genai.LLMPipeline`` over an exported IR folder."""

    name = "openvino"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        self.folder = Path(settings.model_path)
        self.pipeline: Any = None
        self.tokenizer: Any = None
        self._context: int | None = None
        self._lock = asyncio.Lock()
        # held by the worker thread for the whole of pipeline.generate: a cancelled request
        # whose thread runs one more token never overlaps the next request's
        self._pipeline_lock = threading.Lock()

    async def start(self) -> None:
        """Compile the model and its tokenizer (seconds; in a thread)."""
        if self.settings.adapters:
            raise BackendUnavailableError(
                "openvino backend: adapters are not served; merge each adapter "
                "(`clinical-llm export RUN --merge`) and export it as its own model"
            )
        folder = check_ir_folder(self.folder)
        try:
            import openvino_genai
        except ImportError as exc:
            raise BackendUnavailableError(
                f"openvino backend: openvino-genai is not installed: {INSTALL}"
            ) from exc
        options = dict(self.settings.options)
        properties: dict[str, Any] = {}
        if options.get("threads"):
            properties["INFERENCE_NUM_THREADS"] = int(options["threads"])
        device = str(options.get("device", "CPU"))

        def build() -> Any:
            return openvino_genai.LLMPipeline(str(folder), device, **properties)

        try:
            self.pipeline = await asyncio.to_thread(build)
        except RuntimeError as exc:
            raise BackendUnavailableError(
                f"openvino backend: cannot load {folder} on {device}: {exc}"
            ) from exc
        self.tokenizer = self.pipeline.get_tokenizer()
        self._context = _context_length(folder, options)

    async def close(self) -> None:
        """Drop the pipeline (OpenVINO frees the compiled model with it)."""
        async with self._lock:
            self.pipeline = None
            self.tokenizer = None

    def ready(self) -> bool:
        """True once the pipeline is compiled."""
        return self.pipeline is not None

    def models(self) -> list[ServedModel]:
        """The one served model (no adapters)."""
        return [
            ServedModel(
                id=self.settings.model_name,
                root=str(self.folder),
                max_model_len=self._context,
            )
        ]

    def _encode(self, request: GenerationRequest) -> list[int]:
        if self.tokenizer is None:
            raise BackendUnavailableError("the openvino backend has not started")
        if request.messages is not None:
            text = self.tokenizer.apply_chat_template(
                text_messages(request.messages), add_generation_prompt=True
            )
            # the chat template writes the BOS token itself
            encoded = self.tokenizer.encode(text, add_special_tokens=False)
        else:
            encoded = self.tokenizer.encode(request.prompt or "", add_special_tokens=True)
        return [int(t) for t in encoded.input_ids.data[0]]

    def count_prompt_tokens(self, request: GenerationRequest) -> int:
        """Prompt tokens after the chat template.

        Raises:
            BadRequestError: a content part that is not text.
            BackendUnavailableError: the backend has not started.
        """
        return len(self._encode(request))

    def _config(self, request: GenerationRequest, choice: int) -> Any:
        import openvino_genai

        sampling = request.sampling
        config = self.pipeline.get_generation_config()
        config.max_new_tokens = sampling.max_tokens
        config.apply_chat_template = False  # the prompt is already rendered and tokenised
        config.num_return_sequences = 1
        config.stop_strings = set()
        if sampling.temperature > 0:
            config.do_sample = True
            config.temperature = sampling.temperature
            config.top_p = sampling.top_p
            config.top_k = 0
            if sampling.seed is not None:
                config.rng_seed = sampling.seed + choice
        else:
            config.do_sample = False
        if not isinstance(config, openvino_genai.GenerationConfig):  # pragma: no cover
            raise BackendUnavailableError("openvino backend: no generation config")
        return config

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream text deltas per choice; the last chunk carries usage.

        Raises:
            BadRequestError: an adapter or image part was asked for, or the prompt does not fit.
            BackendUnavailableError: the pipeline is not loaded or failed.
        """
        if request.adapter is not None:
            raise BadRequestError(f"no adapter named {request.adapter!r}", param="model")
        if not self.ready():
            raise BackendUnavailableError("the openvino backend has not started")
        ids = self._encode(request)
        if self._context and len(ids) + request.sampling.max_tokens > self._context:
            raise BadRequestError(
                f"prompt ({len(ids)} tokens) plus max_tokens ({request.sampling.max_tokens}) "
                f"exceeds the model's context of {self._context} tokens",
                param="max_tokens",
            )
        completion_tokens = 0
        async with self._lock:
            for choice in range(request.sampling.n):
                last = choice == request.sampling.n - 1
                finish: Literal["stop", "length"] = "stop"
                async with contextlib.aclosing(self._generate_one(request, ids, choice)) as chunks:
                    async for chunk in chunks:
                        if chunk.finish_reason is not None:
                            finish = chunk.finish_reason
                            completion_tokens += chunk.token_count
                            continue
                        yield chunk
                usage = Usage(len(ids), completion_tokens) if last else None
                yield GenerationChunk(choice, "", 0, finish, usage)

    async def _generate_one(
        self, request: GenerationRequest, ids: list[int], choice: int
    ) -> AsyncGenerator[GenerationChunk, None]:
        """Deltas of one choice, then a chunk with its finish reason and its token count."""
        import numpy as np
        import openvino
        import openvino_genai

        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[object] = asyncio.Queue()
        cancelled = threading.Event()
        state = _Choice(
            lambda tokens: str(self.tokenizer.decode(tokens, skip_special_tokens=True)),
            request.sampling.stop,
        )

        class Streamer(openvino_genai.StreamerBase):
            def write(self, token: Any) -> Any:
                tokens = token if isinstance(token, list) else [token]
                for t in tokens:
                    delta = state.add(int(t))
                    loop.call_soon_threadsafe(queue.put_nowait, (delta, 1))
                    if state.stopped:
                        return openvino_genai.StreamingStatus.STOP
                if cancelled.is_set():
                    return openvino_genai.StreamingStatus.CANCEL
                return openvino_genai.StreamingStatus.RUNNING

            def end(self) -> None:
                loop.call_soon_threadsafe(queue.put_nowait, (state.flush(), 0))

        config = self._config(request, choice)
        inputs = openvino.Tensor(np.array([ids], dtype=np.int64))
        streamer = Streamer()

        def run() -> None:
            try:
                with self._pipeline_lock:
                    self.pipeline.generate(inputs, config, streamer)
            except Exception as exc:  # reported to the request, never with its text
                loop.call_soon_threadsafe(queue.put_nowait, exc)
            finally:
                loop.call_soon_threadsafe(queue.put_nowait, _DONE)

        worker = asyncio.ensure_future(asyncio.to_thread(run))
        tokens = 0
        try:
            while True:
                item = await queue.get()
                if item is _DONE:
                    break
                if isinstance(item, Exception):
                    raise BackendUnavailableError(
                        f"the openvino pipeline failed on request {request.request_id}: "
                        f"{type(item).__name__}"
                    )
                delta, count = cast(tuple[str, int], item)
                tokens += count
                if delta or count:
                    yield GenerationChunk(choice, delta, count)
        finally:
            cancelled.set()
            # the pipeline stops at its next token; wait so the lock is not released early
            with contextlib.suppress(Exception):
                await asyncio.shield(worker)
        finish: Literal["stop", "length"] = (
            "length" if not state.stopped and tokens >= request.sampling.max_tokens else "stop"
        )
        yield GenerationChunk(choice, "", tokens, finish)
