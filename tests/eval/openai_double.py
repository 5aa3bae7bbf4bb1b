"""A local OpenAI-compatible chat server for the HTTP runner tests.

TEST DOUBLE: a server that shares no code with ``serving/`` or with the runner,
so the HTTP runner's tests check the runner alone, and faults can be injected
that the real gateway would not produce on demand. The runner against the real
gateway is checked in ``tests/eval/test_run.py``
(``test_endpoint_run_through_the_real_gateway_matches_the_local_run``). It
speaks the part of the API the runner uses (``GET /v1/models``,
``POST /v1/chat/completions``, OpenAI error bodies) and generates with a real
model folder, deliberately NOT through the runner code under test: one prompt
at a time, no padding, rendered with ``apply_chat_template``, so agreement
with the batched, left-padded local runner is a real check.

Faults can be injected: each queued ``(status, headers)`` answers one request
before any generation, e.g. ``[(503, {}), (429, {"Retry-After": "1"})]``.
"""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
import uvicorn
from fastapi import FastAPI, Request
from fastapi.responses import JSONResponse

from llm.models.loading import load_causal_lm
from llm.net import free_port

MODEL_NAME = "tiny-double"


@dataclass
class ServerState:
    """What the tests can see and steer."""

    faults: list[tuple[int, dict[str, str]]] = field(default_factory=list)
    requests: int = 0
    authorizations: list[str | None] = field(default_factory=list)
    request_times: list[float] = field(default_factory=list)


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> JSONResponse:
    kind = {429: "rate_limit_error", 503: "service_unavailable"}.get(
        status, "invalid_request_error"
    )
    body = {"error": {"message": message, "type": kind, "param": None, "code": None}}
    return JSONResponse(body, status_code=status, headers=headers)


def make_app(model_dir: Path, state: ServerState) -> FastAPI:
    """The app, generating with the model in ``model_dir``."""
    model, tokenizer = load_causal_lm(model_dir)
    model.eval()
    eos = [tokenizer.eos_token_id]
    configured = model.generation_config.eos_token_id
    eos += [
        i for i in (configured if isinstance(configured, list) else [configured]) if i not in eos
    ]
    lock = threading.Lock()  # one generation at a time, as a single-replica backend
    app = FastAPI()

    @app.get("/v1/models")
    def models() -> dict[str, Any]:
        return {"object": "list", "data": [{"id": MODEL_NAME, "object": "model"}]}

    @app.post("/v1/chat/completions", response_model=None)
    async def chat(request: Request) -> Any:
        state.requests += 1
        state.request_times.append(time.monotonic())
        state.authorizations.append(request.headers.get("authorization"))
        if state.faults:
            status, headers = state.faults.pop(0)
            return _error(status, "injected fault", headers)
        body = await request.json()
        if body.get("model") != MODEL_NAME:
            return _error(404, f"model {body.get('model')!r} not found")
        ids = tokenizer.apply_chat_template(
            body["messages"], tokenize=True, add_generation_prompt=True, return_dict=True
        )["input_ids"]
        input_ids = torch.tensor([list(ids)])
        with lock, torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=int(body.get("max_tokens") or 16),
                do_sample=False,
                eos_token_id=eos,
                pad_token_id=tokenizer.pad_token_id,
            )
        text = tokenizer.decode(out[0, input_ids.shape[1] :], skip_special_tokens=True)
        for stop in body.get("stop") or []:
            if stop in text:
                text = text[: text.index(stop)]
        return {
            "id": f"chatcmpl-{state.requests}",
            "object": "chat.completion",
            "model": MODEL_NAME,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "finish_reason": "stop",
                }
            ],
        }

    return app


@contextmanager
def serve(model_dir: Path) -> Iterator[tuple[str, ServerState]]:
    """Run the double on a free local port; yields its ``/v1`` URL and its state."""
    state = ServerState()
    app = make_app(model_dir, state)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    # log_config=None: uvicorn's default dictConfig closes every handler (pytest's too)
    server = uvicorn.Server(
        uvicorn.Config(app, log_level="warning", lifespan="off", log_config=None)
    )
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the OpenAI test double did not start")
        time.sleep(0.05)
    try:
        yield f"http://127.0.0.1:{port}/v1", state
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def free_port_url() -> str:
    """A ``/v1`` URL on a local port where nothing listens (an endpoint that is down)."""
    return f"http://127.0.0.1:{free_port()}/v1"
