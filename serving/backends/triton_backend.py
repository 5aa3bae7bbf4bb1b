"""``--backend triton``: generation by a Triton server over gRPC (``tritonclient.grpc.aio``).

The server runs a repository written by ``clinical-llm export RUN --triton``
(``llm/export/triton_model.py`` as ``model.py``), in production or locally via
``scripts/triton_server.py``. ``BackendSettings.model_path`` is the server's
gRPC address (``grpc://host:8001`` or ``host:8001``); options (the
``backend_options:`` section of serve.yaml):

* ``triton_model``: the Triton model name (default: the served model name);
* ``timeout_s``: gRPC deadline of one request stream (default 600);
* ``connect_timeout_s``: deadline of the readiness and config calls (default 10).

Chat messages are sent as JSON and rendered inside the Triton model with the
model's own chat template, so the gateway needs no model files; only text
content parts are accepted (the exported model is text-only). A decoupled
model is driven through ``stream_infer`` and streams token deltas; a model
exported without decoupled mode answers one ``infer`` call. ``n > 1`` sends
``n`` requests (seeds ``seed + i``). Closing the generator cancels the gRPC
call, and Triton then stops the model's decoding loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import replace
from typing import Any, Literal

import numpy as np

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
from serving.errors import BackendUnavailableError, BadRequestError, ServingError

log = logging.getLogger(__name__)

BAD_REQUEST = "bad_request: "  # prefix of client errors raised inside the Triton model
UNAVAILABLE_MARKERS = ("unavailable", "failed to connect", "connection refused", "deadline")


def grpc_address(model_path: str) -> str:
    """``host:port`` of a ``grpc://host:port`` (or bare ``host:port``) address.

    Raises:
        ValueError: an HTTP URL or an address without a port.
    """
    address = model_path.removeprefix("grpc://").rstrip("/")
    if "://" in address or ":" not in address:
        raise ValueError(
            f"triton backend: model path {model_path!r} must be the server's gRPC address, "
            "e.g. grpc://127.0.0.1:8001"
        )
    return address


def text_only_messages(messages: list[ChatMessage]) -> list[dict[str, Any]]:
    """Messages with their text parts only, checked for what the Triton model can read.

    Raises:
        BadRequestError: an image or other non-text content part (``param`` names it).
    """
    refuse_non_text_parts(messages, "triton")
    plain = [{"role": m.get("role"), "content": m.get("content")} for m in messages]
    return plain


def _tensor(name: str, datatype: str, values: np.ndarray) -> Any:
    from tritonclient.grpc import InferInput

    tensor = InferInput(name, list(values.shape), datatype)
    tensor.set_data_from_numpy(values)
    return tensor


def triton_top_p(top_p: float) -> np.float32:
    """``top_p`` as the FP32 input the model takes: never rounded down to 0.

    The gateway accepts any top_p in (0, 1]; float32 rounds one below ~1e-45 to 0, which
    the model refuses (and a subnormal may be flushed to 0 in its comparisons). The smallest
    normal float32 keeps only the most likely token, which is what such a tiny top_p means
    (the transformers sampler keeps the top token the same way, 25f2134).
    """
    return max(np.float32(top_p), np.finfo(np.float32).tiny)


def build_inputs(request: GenerationRequest, choice: int) -> list[Any]:
    """The Triton input tensors of one choice of ``request``."""
    sampling = request.sampling
    if request.messages is not None:
        body = json.dumps(text_only_messages(request.messages)).encode("utf-8")
        inputs = [_tensor("messages", "BYTES", np.array([body], dtype=np.object_))]
    else:
        prompt = (request.prompt or "").encode("utf-8")
        inputs = [_tensor("prompt", "BYTES", np.array([prompt], dtype=np.object_))]
    inputs += [
        _tensor("max_tokens", "INT32", np.array([sampling.max_tokens], dtype=np.int32)),
        _tensor("temperature", "FP32", np.array([sampling.temperature], dtype=np.float32)),
        _tensor("top_p", "FP32", np.array([triton_top_p(sampling.top_p)], dtype=np.float32)),
    ]
    if sampling.seed is not None:
        # the model takes seeds in [0, 2**63) (a negative one means "unseeded" there); every
        # 64-bit seed the gateway accepts, plus the choice index, is folded into that range
        seed = (sampling.seed + choice) % 2**63
        inputs.append(_tensor("seed", "INT64", np.array([seed], dtype=np.int64)))
    if sampling.stop:
        stops = np.array([s.encode("utf-8") for s in sampling.stop], dtype=np.object_)
        inputs.append(_tensor("stop", "BYTES", stops))
    return inputs


def _as_serving_error(exc: Exception, model: str) -> ServingError:
    message = str(getattr(exc, "message", lambda: None)() or exc)
    if BAD_REQUEST in message:
        # the model's own messages name fields and limits only, never the text
        return BadRequestError(message.split(BAD_REQUEST, 1)[1])
    if any(marker in message.lower() for marker in UNAVAILABLE_MARKERS):
        return BackendUnavailableError(f"triton server for model '{model}' is unavailable")
    # other server errors may quote inputs: keep their text out of the response and logs
    return BackendUnavailableError(
        f"triton server failed on model '{model}' ({type(exc).__name__})"
    )


def _chunk(result: Any, choice: int) -> tuple[GenerationChunk, int]:
    text = result.as_numpy("text").reshape(-1)[0].decode("utf-8")
    reason = result.as_numpy("finish_reason").reshape(-1)[0].decode("utf-8")
    finish: Literal["stop", "length"] | None = (
        "length" if reason == "length" else "stop" if reason else None
    )
    count = int(result.as_numpy("token_count").reshape(-1)[0])
    prompt_tokens = int(result.as_numpy("prompt_tokens").reshape(-1)[0])
    return GenerationChunk(choice, text, count, finish), prompt_tokens


class TritonBackend(Backend):
    """A model served by Triton, reached with the gRPC asyncio client."""

    name = "triton"

    def __init__(self, settings: BackendSettings) -> None:
        super().__init__(settings)
        if settings.adapters:
            raise ValueError(
                "triton backend: adapters are not served as LoRA requests; export each "
                "adapter run with `clinical-llm export RUN --triton` (merged) and serve it "
                "as its own model"
            )
        self.address = grpc_address(settings.model_path)
        options = settings.options
        self.triton_model = str(options.get("triton_model", settings.model_name))
        self.timeout_s = float(options.get("timeout_s", 600))
        self.connect_timeout_s = float(options.get("connect_timeout_s", 10))
        self._client: Any = None
        self._ready = False
        self._decoupled = True
        self._max_model_len: int | None = None

    async def start(self) -> None:
        """Connect, check the server and model are ready, and read the model's config.

        Raises:
            BackendUnavailableError: the server does not answer or the model is not ready.
        """
        import tritonclient.grpc.aio as triton_grpc

        self._client = triton_grpc.InferenceServerClient(self.address)
        try:
            server_ready = await asyncio.wait_for(
                self._client.is_server_ready(), self.connect_timeout_s
            )
            model_ready = server_ready and await asyncio.wait_for(
                self._client.is_model_ready(self.triton_model), self.connect_timeout_s
            )
            if not model_ready:
                raise BackendUnavailableError(
                    f"triton server {self.address}: model '{self.triton_model}' is not ready"
                )
            config = await asyncio.wait_for(
                self._client.get_model_config(self.triton_model, as_json=True),
                self.connect_timeout_s,
            )
        except ServingError:
            raise
        except Exception as exc:
            raise BackendUnavailableError(
                f"triton server {self.address} does not answer ({type(exc).__name__})"
            ) from None
        model_config = config.get("config", config)
        policy = model_config.get("model_transaction_policy", {})
        self._decoupled = bool(policy.get("decoupled", False))
        length = model_config.get("parameters", {}).get("max_model_len", {}).get("string_value")
        self._max_model_len = int(length) if length else None
        self._ready = True
        log.info(
            "triton backend: model '%s' at %s (decoupled=%s, context=%s)",
            self.triton_model,
            self.address,
            self._decoupled,
            self._max_model_len,
        )

    async def close(self) -> None:
        """Close the gRPC channel."""
        self._ready = False
        if self._client is not None:
            await self._client.close()
            self._client = None

    def ready(self) -> bool:
        """True after a successful ``start`` while no call has found the server down."""
        return self._ready

    async def check_ready(self) -> bool:
        """Ask the server whether the model is ready now (updates :meth:`ready`)."""
        if self._client is None:
            return False
        try:
            self._ready = bool(
                await asyncio.wait_for(
                    self._client.is_model_ready(self.triton_model), self.connect_timeout_s
                )
            )
        except Exception:
            self._ready = False
        return self._ready

    def models(self) -> list[ServedModel]:
        """The one model this backend serves."""
        return [
            ServedModel(
                id=self.settings.model_name,
                root=f"triton://{self.address}/{self.triton_model}",
                max_model_len=self._max_model_len,
            )
        ]

    async def generate(self, request: GenerationRequest) -> AsyncIterator[GenerationChunk]:
        """Stream ``request``'s choices from Triton; the last chunk carries usage.

        Raises:
            BadRequestError: image parts, or a request the model refuses (too long).
            BackendUnavailableError: the server is down or failed.
        """
        if self._client is None:
            raise BackendUnavailableError("triton backend is not started")
        n = request.sampling.n
        prompt_tokens = 0
        completion_tokens = 0
        pending: list[GenerationChunk] = []
        open_choices = set(range(n))
        async with contextlib.aclosing(self._results(request)) as results:
            async for choice, chunk, prompt_len in results:
                prompt_tokens = prompt_len
                completion_tokens += chunk.token_count
                if chunk.finish_reason is not None:
                    open_choices.discard(choice)
                    if not open_choices:
                        usage = Usage(prompt_tokens, completion_tokens)
                        pending.append(replace(chunk, usage=usage))
                        break
                # hold the latest chunk so the stream's last chunk can carry usage
                pending.append(chunk)
                while len(pending) > 1:
                    yield pending.pop(0)
        for chunk in pending:
            yield chunk

    async def _results(
        self, request: GenerationRequest
    ) -> AsyncGenerator[tuple[int, GenerationChunk, int], None]:
        ids = [f"{request.request_id}-{i}" for i in range(request.sampling.n)]
        try:
            if self._decoupled:
                async with contextlib.aclosing(self._stream(request, ids)) as stream:
                    async for item in stream:
                        yield item
            else:
                for choice, request_id in enumerate(ids):
                    result = await self._client.infer(
                        self.triton_model,
                        build_inputs(request, choice),
                        request_id=request_id,
                        client_timeout=self.timeout_s,
                    )
                    chunk, prompt_len = _chunk(result, choice)
                    yield choice, chunk, prompt_len
        except Exception as exc:
            error = exc
            if not isinstance(exc, ServingError):
                error = _as_serving_error(exc, self.triton_model)
            if isinstance(error, BackendUnavailableError):
                # the server went away (also when _stream already mapped the error): not
                # ready until check_ready finds the model ready again
                self._ready = False
            if error is exc:
                raise
            raise error from None

    async def _stream(
        self, request: GenerationRequest, ids: list[str]
    ) -> AsyncGenerator[tuple[int, GenerationChunk, int], None]:
        finished = asyncio.Event()
        # built before the call: an error inside the request iterator would only cancel it
        inputs = [build_inputs(request, choice) for choice in range(len(ids))]

        async def requests() -> AsyncIterator[dict[str, Any]]:
            for choice, request_id in enumerate(ids):
                yield {
                    "model_name": self.triton_model,
                    "inputs": inputs[choice],
                    "request_id": request_id,
                }
            # keep our side of the stream open until every choice has ended
            await finished.wait()

        stream = self._client.stream_infer(requests(), stream_timeout=self.timeout_s)
        choice_of = {request_id: i for i, request_id in enumerate(ids)}
        try:
            async for result, error in stream:
                if error is not None:
                    raise _as_serving_error(error, self.triton_model)
                choice = choice_of[result.get_response().id]
                chunk, prompt_len = _chunk(result, choice)
                yield choice, chunk, prompt_len
        finally:
            finished.set()
            # a client gone or a finished request: cancel the call so Triton stops decoding
            stream.cancel()
