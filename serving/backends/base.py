"""The contract between the gateway and its backends.

The gateway (``serving.app``) owns HTTP, auth, limits, queueing, audit and
metrics; a backend only turns a :class:`GenerationRequest` into a stream of
:class:`GenerationChunk`. Each backend lives in its own module under
``serving/backends/`` and is imported lazily by name (see
``serving.backends.BACKENDS``), so the gateway starts without torch or vLLM
when they are not used.

Rules every backend follows:

- ``generate`` is an async generator. The gateway cancels it (``aclose()`` or
  task cancellation) when the client disconnects or the request times out;
  the backend must then stop spending compute on that request promptly.
- Chunks carry text *deltas* per choice ``index`` (``0 .. n-1``). Exactly one
  chunk per choice has a ``finish_reason`` (``"stop"`` or ``"length"``), and
  the last chunk of the whole stream carries ``usage``.
- Failures are raised as :mod:`serving.errors` exceptions (e.g.
  ``BadRequestError`` when the prompt plus ``max_tokens`` exceeds the context,
  ``BackendUnavailableError`` when an engine or upstream is down). Messages
  name limits and fields, never prompt or completion text.
- Nothing a backend logs contains prompt or completion text.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from serving.errors import BadRequestError

# OpenAI chat message content: a string or a list of parts such as
# {"type": "text", "text": ...} and {"type": "image_url", "image_url": {"url": "data:..."}}.
ChatMessage = dict[str, Any]


@dataclass(frozen=True)
class SamplingParams:
    """Decoding settings of one request, already validated by the gateway."""

    max_tokens: int
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    n: int = 1


@dataclass(frozen=True)
class GenerationRequest:
    """One completion or chat-completion request, as the backend sees it.

    Exactly one of ``prompt`` (``/v1/completions``) and ``messages``
    (``/v1/chat/completions``) is set. ``model`` is the served name, which
    may be an adapter's name; ``adapter`` is then that adapter's name too
    (``None`` for the base model).
    """

    request_id: str
    model: str
    sampling: SamplingParams
    prompt: str | None = None
    messages: list[ChatMessage] | None = None
    adapter: str | None = None

    @property
    def kind(self) -> Literal["completion", "chat"]:
        """Which endpoint the request came from."""
        return "chat" if self.messages is not None else "completion"


@dataclass(frozen=True)
class Usage:
    """Token counts of a finished request (all choices together for completion tokens)."""

    prompt_tokens: int
    completion_tokens: int

    @property
    def total_tokens(self) -> int:
        """Prompt plus completion tokens."""
        return self.prompt_tokens + self.completion_tokens


@dataclass(frozen=True)
class GenerationChunk:
    """A piece of output: new text of one choice, and possibly its end."""

    index: int = 0
    text: str = ""
    token_count: int = 0
    finish_reason: Literal["stop", "length"] | None = None
    usage: Usage | None = None


@dataclass(frozen=True)
class ServedModel:
    """An entry of ``GET /v1/models``."""

    id: str
    root: str
    parent: str | None = None
    max_model_len: int | None = None
    owned_by: str = "clinical-llm"


@dataclass(frozen=True)
class BackendSettings:
    """What ``clinical-llm serve`` tells a backend to serve.

    ``model_path`` is a local model folder (``transformers``, ``vllm``), a
    Triton URL (``triton``) or an upstream ``/v1`` base URL (``openai``).
    ``adapters`` maps served names to adapter folders. ``options`` holds the
    backend's own section of ``serve.yaml`` (e.g. ``max_batch_size``).
    """

    model_name: str
    model_path: str
    adapters: dict[str, Path] = field(default_factory=dict)
    options: dict[str, Any] = field(default_factory=dict)


class Backend(ABC):
    """A generation engine behind the gateway."""

    name: str = "backend"

    def __init__(self, settings: BackendSettings) -> None:
        self.settings = settings

    @abstractmethod
    async def start(self) -> None:
        """Load the model / connect the upstream. Raise ``BackendUnavailableError`` on failure."""

    @abstractmethod
    async def close(self) -> None:
        """Release the engine, threads and connections."""

    @abstractmethod
    def ready(self) -> bool:
        """True once ``start`` finished and the engine can take requests."""

    async def check_ready(self) -> bool:
        """Find out now whether the engine can take requests, and recover if it can.

        The gateway calls it for ``/ready`` and, at most about once a second, while
        :meth:`ready` is False, so an upstream or engine that died and came back is
        used again without a restart. The default only reports :meth:`ready`;
        backends whose engine lives elsewhere ask it (bounded by their connect
        timeout) or start it again.
        """
        return self.ready()

    @abstractmethod
    def models(self) -> list[ServedModel]:
        """The base model and every adapter, as ``GET /v1/models`` lists them."""

    @abstractmethod
    def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream the output of ``request`` (an async generator, cancellable)."""

    def max_model_len(self, model: str) -> int | None:
        """Context length of ``model`` when the backend knows it (used for the 400 check)."""
        for served in self.models():
            if served.id == model:
                return served.max_model_len
        return None

    def count_prompt_tokens(self, request: GenerationRequest) -> int | None:
        """Prompt length in tokens after the chat template, or None when unknown here.

        The gateway uses it to answer 400 before queueing when prompt plus
        ``max_tokens`` exceeds ``max_model_len``; a backend that cannot count
        (an upstream) returns None and lets the engine decide.
        """
        return None


def refuse_non_text_parts(messages: list[Any], backend: str) -> None:
    """Refuse a content part that is not text, for a backend serving text-only models.

    Raises:
        BadRequestError: naming the part's type and position (``param``).
    """
    for i, message in enumerate(messages):
        content = message.get("content")
        if not isinstance(content, list):
            continue
        for j, part in enumerate(content):
            if not isinstance(part, dict) or part.get("type") != "text":
                kind = part.get("type") if isinstance(part, dict) else type(part).__name__
                raise BadRequestError(
                    f"the {backend} backend serves text-only models; content part of type "
                    f"{kind!r} is not supported",
                    param=f"messages[{i}].content[{j}]",
                )
