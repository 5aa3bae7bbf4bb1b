"""OpenAI wire format: request and response models, apart from the serving logic.

Requests parse fields this gateway does not implement (``extra="allow"``) only
to refuse them by name: :meth:`OpenAIRequest.check_supported` answers 400 for
any of them not at a neutral value (:mod:`serving.unsupported`), so a request
for tools, JSON mode or log probabilities never gets an ordinary answer.
Each endpoint is one request class that knows its own wire shapes: it converts
itself to the backend's request (:meth:`OpenAIRequest.to_generation_request`,
:meth:`OpenAIRequest.to_sampling_params`) and builds its answers (the JSON body,
the SSE events), so the gateway treats chat and text completions alike.

Each ``ChoiceText`` is one choice of a non-streaming answer: ``(text, finish_reason)``.
"""

from __future__ import annotations

import re
import time
from abc import abstractmethod
from collections.abc import Sequence
from typing import Annotated, Any, ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field, WithJsonSchema, field_validator

from serving.backends.base import (
    ChatMessage,
    GenerationChunk,
    GenerationRequest,
    SamplingParams,
    ServedModel,
    Usage,
)
from serving.errors import BadRequestError
from serving.unsupported import (
    CHAT_UNSUPPORTED,
    COMPLETION_UNSUPPORTED,
    NeutralOnly,
    check_supported,
    document_unsupported,
)

ChoiceText = tuple[str, str | None]

# temperatures below this decode greedily (vLLM's _SAMPLING_EPS)
GREEDY_TEMPERATURE = 1e-5

# data:image/TYPE[;param...];base64,DATA with DATA whole base64 quads (what b64decode takes).
# The schema states it as one pattern; the check splits it so that no backtracking regex
# runs over a 16 MB body (the one-pattern form took seconds on a crafted URL).
_IMAGE_DATA_URL_PATTERN = (
    r"^data:image/[A-Za-z0-9.+\-]{1,64}(;[A-Za-z0-9.+\-=]{1,64}){0,8};base64,"
    r"([A-Za-z0-9+/]{4})*([A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$"
)
_DATA_URL_HEADER = re.compile(
    r"data:image/[A-Za-z0-9.+\-]{1,64}(;[A-Za-z0-9.+\-=]{1,64}){0,8};base64"
)
_MAX_HEADER = 11 + 64 + 8 * 65 + 7
_NOT_BASE64 = re.compile(r"[^A-Za-z0-9+/]")


def is_image_data_url(url: str) -> bool:
    """True when ``url`` is a ``data:image/...;base64,...`` URL with well-formed base64."""
    header, comma, data = url.partition(",")
    if not comma or len(header) > _MAX_HEADER or not _DATA_URL_HEADER.fullmatch(header):
        return False
    body = data.rstrip("=")
    padding = len(data) - len(body)
    return padding <= 2 and len(data) % 4 == 0 and not _NOT_BASE64.search(body)


# JSON schemas of fields whose rules a validator words (the schema only documents them)
_STOP_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {"type": "array", "items": {"type": "string", "minLength": 1}, "maxItems": 4},
        {"type": "null"},
    ],
    "description": "Up to 4 non-empty stop sequences.",
}
_PROMPT_SCHEMA: dict[str, Any] = {
    "anyOf": [
        {"type": "string", "minLength": 1},
        {
            "type": "array",
            "items": {"type": "string", "minLength": 1},
            "minItems": 1,
            "maxItems": 1,
        },
    ],
    "description": "One non-empty prompt per request (a string, or a list of one string).",
}


class StreamOptions(BaseModel):
    """``stream_options``: whether the last SSE chunk carries usage."""

    model_config = ConfigDict(extra="allow")

    include_usage: bool = False


class ImageURL(BaseModel):
    """The ``image_url`` object of an image content part."""

    model_config = ConfigDict(extra="allow")

    # the pattern documents the check below (which words the error) in the schema
    url: str = Field(json_schema_extra={"pattern": _IMAGE_DATA_URL_PATTERN})
    detail: str | None = None

    @field_validator("url")
    @classmethod
    def _data_url_only(cls, url: str) -> str:
        # The gateway never fetches remote images: clinical apps send the bytes.
        if not url.startswith("data:image/"):
            raise ValueError("must be a data:image/... URL; remote images are not fetched")
        # the form every backend decodes; a malformed one used to reach the backend
        if not is_image_data_url(url):
            raise ValueError("must be data:image/TYPE;base64,DATA with DATA valid base64")
        return url


class TextPart(BaseModel):
    """A text content part."""

    model_config = ConfigDict(extra="allow")

    type: Literal["text"]
    text: str


class ImagePart(BaseModel):
    """An image content part (data URL)."""

    model_config = ConfigDict(extra="allow")

    type: Literal["image_url"]
    image_url: ImageURL


ContentPart = Annotated[TextPart | ImagePart, Field(discriminator="type")]


class ChatMessageParam(BaseModel):
    """One chat message: role and content (a string or a list of parts)."""

    model_config = ConfigDict(extra="allow")

    role: Literal["system", "developer", "user", "assistant", "tool"]
    content: str | list[ContentPart] | None = None
    name: str | None = None


class OpenAIRequest(BaseModel):
    """Fields and conversions both generation endpoints share.

    Class attributes: ``endpoint`` (the route path), ``id_prefix`` (of response
    ids), ``prompt_field`` (the field a too-long prompt is reported on) and
    ``unsupported`` (the endpoint's OpenAI parameters this gateway refuses).
    """

    model_config = ConfigDict(
        extra="allow", json_schema_extra=lambda schema, cls: _closed(schema, cls)
    )

    endpoint: ClassVar[str]
    id_prefix: ClassVar[str]
    prompt_field: ClassVar[str]
    unsupported: ClassVar[dict[str, NeutralOnly]] = {}

    model: str = Field(min_length=1)
    max_tokens: int | None = Field(None, ge=1)
    temperature: float = Field(1.0, ge=0.0, le=2.0)
    top_p: float = Field(1.0, gt=0.0, le=1.0)
    # a 64-bit seed, as the engines take it (a larger one used to reach them and fail)
    seed: int | None = Field(None, ge=-(2**63), le=2**63 - 1)
    # the schema states what the validator below checks
    stop: Annotated[str | list[str] | None, WithJsonSchema(_STOP_SCHEMA)] = None
    n: int = Field(1, ge=1)
    stream: bool = False
    stream_options: StreamOptions | None = None
    user: str | None = None

    @field_validator("stop")
    @classmethod
    def _stop_strings(cls, stop: str | list[str] | None) -> str | list[str] | None:
        values = [stop] if isinstance(stop, str) else (stop or [])
        if len(values) > 4:
            raise ValueError("at most 4 stop sequences")
        if any(not value for value in values):
            raise ValueError("stop sequences must not be empty")
        return stop

    def check_supported(self) -> None:
        """Refuse the fields this gateway does not implement (unless at a neutral value).

        Raises:
            BadRequestError: 400 ``unsupported_parameter`` naming the first such field.
        """
        check_supported(self.model_extra or {}, self.unsupported)

    def requested_max_tokens(self) -> int | None:
        """max_tokens as the client asked for it (None: left to the gateway default)."""
        return self.max_tokens

    def include_usage(self) -> bool:
        """True when a streamed answer must end with a usage chunk."""
        return bool(self.stream_options and self.stream_options.include_usage)

    def to_sampling_params(self, max_tokens: int) -> SamplingParams:
        """Engine parameters of this request.

        Args:
            max_tokens: the resolved token budget (the gateway applies defaults and caps).

        Returns:
            The backend's sampling parameters.
        """
        stop = (self.stop,) if isinstance(self.stop, str) else tuple(self.stop or ())
        return SamplingParams(
            max_tokens=max_tokens,
            # below GREEDY_TEMPERATURE sampling is greedy in all but rounding (vLLM's rule);
            # a subnormal temperature reached the engines as 0 or inf and failed the batch
            temperature=0.0 if self.temperature < GREEDY_TEMPERATURE else self.temperature,
            top_p=self.top_p,
            seed=self.seed,
            stop=stop,
            n=self.n,
        )

    @abstractmethod
    def to_generation_request(
        self, request_id: str, max_tokens: int, adapter: str | None
    ) -> GenerationRequest:
        """The backend's request for this one.

        Args:
            request_id: the response id.
            max_tokens: the resolved token budget.
            adapter: the adapter the model name routes to (None: the base model).

        Raises:
            BadRequestError: the prompt is not one the backends serve.
        """

    @abstractmethod
    def response_body(
        self, request_id: str, choices: Sequence[ChoiceText], usage: Usage
    ) -> dict[str, Any]:
        """The JSON body of a non-streaming answer."""

    def stream_opening(self, request_id: str, created: int) -> list[dict[str, Any]]:
        """SSE payloads sent before the first backend chunk (none by default)."""
        return []

    @abstractmethod
    def stream_chunk(self, request_id: str, created: int, chunk: GenerationChunk) -> dict[str, Any]:
        """The SSE payload of one backend chunk (usage left out; it gets its own event).

        Args:
            request_id: the response id.
            created: creation time of the response (same for every chunk).
            chunk: the backend's delta.
        """

    @abstractmethod
    def stream_usage(self, request_id: str, created: int, usage: Usage) -> dict[str, Any]:
        """The final SSE payload of ``stream_options.include_usage``: no choices, only usage."""


class ChatCompletionRequest(OpenAIRequest):
    """``POST /v1/chat/completions``."""

    endpoint: ClassVar[str] = "/v1/chat/completions"
    id_prefix: ClassVar[str] = "chatcmpl-"
    prompt_field: ClassVar[str] = "messages"
    unsupported: ClassVar[dict[str, NeutralOnly]] = CHAT_UNSUPPORTED

    messages: list[ChatMessageParam] = Field(min_length=1)
    max_completion_tokens: int | None = Field(None, ge=1)
    # identifiers of the end user, like ``user``: they change nothing in the answer
    safety_identifier: str | None = None
    prompt_cache_key: str | None = None

    def requested_max_tokens(self) -> int | None:
        """max_tokens, or the newer max_completion_tokens name of the same limit."""
        return self.max_tokens if self.max_tokens is not None else self.max_completion_tokens

    def chat_messages(self) -> list[ChatMessage]:
        """The messages as plain dicts for the backend (unset fields left out)."""
        return [message.model_dump(exclude_none=True) for message in self.messages]

    def to_generation_request(
        self, request_id: str, max_tokens: int, adapter: str | None
    ) -> GenerationRequest:
        """The backend's request: the chat messages (see ``OpenAIRequest``)."""
        return GenerationRequest(
            request_id,
            self.model,
            self.to_sampling_params(max_tokens),
            messages=self.chat_messages(),
            adapter=adapter,
        )

    def response_body(
        self, request_id: str, choices: Sequence[ChoiceText], usage: Usage
    ) -> dict[str, Any]:
        """A ``chat.completion`` body."""
        return ChatCompletionResponse(
            id=request_id,
            model=self.model,
            choices=[
                ChatChoice(index=i, message=AssistantMessage(content=text), finish_reason=fin)
                for i, (text, fin) in enumerate(choices)
            ],
            usage=UsageBody.of(usage),
        ).model_dump()

    def stream_opening(self, request_id: str, created: int) -> list[dict[str, Any]]:
        """The assistant role of every choice, as OpenAI sends it first."""
        opening = ChatCompletionChunk(
            id=request_id,
            created=created,
            model=self.model,
            choices=[
                ChatChunkChoice(index=index, delta=ChatDelta(role="assistant", content=""))
                for index in range(self.n)
            ],
        )
        return [opening.model_dump()]

    def stream_chunk(self, request_id: str, created: int, chunk: GenerationChunk) -> dict[str, Any]:
        """A ``chat.completion.chunk`` with the chunk's text as the delta's content."""
        return ChatCompletionChunk(
            id=request_id,
            created=created,
            model=self.model,
            choices=[
                ChatChunkChoice(
                    index=chunk.index,
                    delta=ChatDelta(content=chunk.text),
                    finish_reason=chunk.finish_reason,
                )
            ],
        ).model_dump(exclude_none=False)

    def stream_usage(self, request_id: str, created: int, usage: Usage) -> dict[str, Any]:
        """A ``chat.completion.chunk`` with no choices and the usage."""
        return ChatCompletionChunk(
            id=request_id, created=created, model=self.model, choices=[], usage=UsageBody.of(usage)
        ).model_dump()


class CompletionRequest(OpenAIRequest):
    """``POST /v1/completions`` (one prompt per request)."""

    endpoint: ClassVar[str] = "/v1/completions"
    id_prefix: ClassVar[str] = "cmpl-"
    prompt_field: ClassVar[str] = "prompt"
    unsupported: ClassVar[dict[str, NeutralOnly]] = COMPLETION_UNSUPPORTED

    prompt: Annotated[str | list[str], WithJsonSchema(_PROMPT_SCHEMA)]

    @field_validator("prompt")
    @classmethod
    def _prompt_not_empty(cls, prompt: str | list[str]) -> str | list[str]:
        # an empty prompt is refused here, not by some backends only (transformers did)
        if any(not text for text in ([prompt] if isinstance(prompt, str) else prompt)):
            raise ValueError("must not be empty")
        return prompt

    def prompt_text(self) -> str:
        """The single prompt string.

        Raises:
            BadRequestError: a list of more than one prompt (batched prompts are not served).
        """
        if isinstance(self.prompt, str):
            return self.prompt
        if len(self.prompt) != 1:
            raise BadRequestError(
                "prompt: send one prompt per request (a list of exactly one string)",
                param="prompt",
            )
        return self.prompt[0]

    def to_generation_request(
        self, request_id: str, max_tokens: int, adapter: str | None
    ) -> GenerationRequest:
        """The backend's request: the single prompt (see :meth:`prompt_text`)."""
        return GenerationRequest(
            request_id,
            self.model,
            self.to_sampling_params(max_tokens),
            prompt=self.prompt_text(),
            adapter=adapter,
        )

    def response_body(
        self, request_id: str, choices: Sequence[ChoiceText], usage: Usage
    ) -> dict[str, Any]:
        """A ``text_completion`` body."""
        return CompletionResponse(
            id=request_id,
            model=self.model,
            choices=[
                CompletionChoice(index=i, text=text, finish_reason=fin)
                for i, (text, fin) in enumerate(choices)
            ],
            usage=UsageBody.of(usage),
        ).model_dump()

    def stream_chunk(self, request_id: str, created: int, chunk: GenerationChunk) -> dict[str, Any]:
        """A ``text_completion`` event with the chunk's text."""
        return CompletionChunk(
            id=request_id,
            created=created,
            model=self.model,
            choices=[
                CompletionChoice(
                    index=chunk.index, text=chunk.text, finish_reason=chunk.finish_reason
                )
            ],
        ).model_dump()

    def stream_usage(self, request_id: str, created: int, usage: Usage) -> dict[str, Any]:
        """A ``text_completion`` event with no choices and the usage."""
        return CompletionChunk(
            id=request_id, created=created, model=self.model, choices=[], usage=UsageBody.of(usage)
        ).model_dump()


def _closed(schema: dict[str, Any], cls: type[BaseModel]) -> None:
    """JSON schema of a request class: its refused parameters listed, no other property."""
    if issubclass(cls, OpenAIRequest):
        document_unsupported(schema, cls.unsupported, cls.model_fields)


# ---------------------------------------------------------------- responses


class UsageBody(BaseModel):
    """OpenAI ``usage``."""

    prompt_tokens: int
    completion_tokens: int
    total_tokens: int

    @classmethod
    def of(cls, usage: Usage) -> UsageBody:
        """Convert the backend's usage."""
        return cls(
            prompt_tokens=usage.prompt_tokens,
            completion_tokens=usage.completion_tokens,
            total_tokens=usage.total_tokens,
        )


class AssistantMessage(BaseModel):
    """The message of a chat choice."""

    role: Literal["assistant"] = "assistant"
    content: str


class ChatChoice(BaseModel):
    """One choice of a chat completion."""

    index: int
    message: AssistantMessage
    finish_reason: str | None
    logprobs: None = None


class ChatCompletionResponse(BaseModel):
    """Non-streaming chat completion."""

    id: str
    object: Literal["chat.completion"] = "chat.completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[ChatChoice]
    usage: UsageBody


class ChatDelta(BaseModel):
    """The delta of a streamed chat choice."""

    role: Literal["assistant"] | None = None
    content: str | None = None


class ChatChunkChoice(BaseModel):
    """One choice of a streamed chat chunk."""

    index: int
    delta: ChatDelta
    finish_reason: str | None = None
    logprobs: None = None


class ChatCompletionChunk(BaseModel):
    """One SSE event of a streamed chat completion."""

    id: str
    object: Literal["chat.completion.chunk"] = "chat.completion.chunk"
    created: int
    model: str
    choices: list[ChatChunkChoice]
    usage: UsageBody | None = None


class CompletionChoice(BaseModel):
    """One choice of a text completion (also the streamed shape)."""

    index: int
    text: str
    finish_reason: str | None = None
    logprobs: None = None


class CompletionResponse(BaseModel):
    """Non-streaming text completion."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int = Field(default_factory=lambda: int(time.time()))
    model: str
    choices: list[CompletionChoice]
    usage: UsageBody


class CompletionChunk(BaseModel):
    """One SSE event of a streamed text completion."""

    id: str
    object: Literal["text_completion"] = "text_completion"
    created: int
    model: str
    choices: list[CompletionChoice]
    usage: UsageBody | None = None


class ModelCard(BaseModel):
    """An entry of ``GET /v1/models``."""

    id: str
    object: Literal["model"] = "model"
    created: int
    owned_by: str
    root: str
    parent: str | None = None
    max_model_len: int | None = None

    @classmethod
    def of(cls, served: ServedModel, created: int) -> ModelCard:
        """Convert the backend's description of a served model."""
        return cls(
            id=served.id,
            created=created,
            owned_by=served.owned_by,
            root=served.root,
            parent=served.parent,
            max_model_len=served.max_model_len,
        )


class ModelList(BaseModel):
    """``GET /v1/models``."""

    object: Literal["list"] = "list"
    data: list[ModelCard]
