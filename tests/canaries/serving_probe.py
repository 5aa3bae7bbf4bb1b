"""Requests that carry the PHI canaries to a live gateway, and what the gateway leaves behind.

Every backend's canary test sends the same :func:`send_canary_requests`: answers on the
chat and completions endpoints (plain and streamed), then requests that fail with the
canaries beside the fault (a bad value, an unsupported parameter, an unknown field named
after the patient, a model named after the patient, a prompt past the context, too many
choices). The generated text of a successful answer is the model's and is left out of
the scan; every other byte the client gets back is scanned.
"""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.canaries.conftest import CANARY_SENTENCE, NAME, assert_no_canary

NOTE = f"Patient {CANARY_SENTENCE} Presents with chest pain. Diagnosis?"
CHAT = [
    {"role": "system", "content": f"Chart of {NAME}."},
    {"role": "user", "content": NOTE},
]


def _without_generated_text(body: dict[str, Any]) -> dict[str, Any]:
    """The answer with each choice's generated text removed (it is the model's output)."""
    for choice in body.get("choices", []):
        choice.pop("text", None)
        for key in ("message", "delta"):
            if isinstance(choice.get(key), dict):
                choice[key].pop("content", None)
    return body


def _stream_events(text: str) -> list[str]:
    events = []
    for line in text.splitlines():
        if line.startswith("data: ") and line != "data: [DONE]":
            events.append(json.dumps(_without_generated_text(json.loads(line[6:]))))
    return events


def send_canary_requests(base_url: str, model: str, *, context_words: int = 4000) -> list[str]:
    """Send the canary requests to ``base_url`` (no ``/v1``); return what came back, scrubbed.

    Args:
        base_url: the gateway, ``http://127.0.0.1:PORT``.
        model: a model name it serves.
        context_words: words of canary text that overflow the model's context.

    Returns:
        Each response (status, headers and body, generated text removed) as text, in order.
    """
    answered: list[tuple[str, dict[str, Any]]] = [
        ("/chat/completions", {"model": model, "messages": CHAT, "max_tokens": 4}),
        ("/completions", {"model": model, "prompt": NOTE, "max_tokens": 4}),
        ("/chat/completions", {"model": model, "messages": CHAT, "max_tokens": 4, "stream": True}),
        ("/completions", {"model": model, "prompt": NOTE, "max_tokens": 4, "stream": True}),
    ]
    overflow = " ".join([CANARY_SENTENCE] * (context_words // 20 + 1))
    refused: list[dict[str, Any]] = [
        {"model": model, "messages": CHAT, "temperature": NOTE},
        {"model": model, "messages": CHAT, "max_tokens": -7},
        {"model": model, "messages": [{"role": NAME, "content": NOTE}]},
        {"model": model, "messages": CHAT, "n": 1000},
        {"model": model, "messages": CHAT, NAME: NOTE, "note": NOTE},
        {"model": model, "messages": CHAT, "response_format": {"type": "json_schema", NAME: NOTE}},
        {
            "model": model,
            "messages": CHAT,
            "tools": [{"type": "function", "function": {"name": "chart", "description": NOTE}}],
        },
        {"model": NAME, "messages": CHAT},
        {"model": model, "messages": [{"role": "user", "content": overflow}], "max_tokens": 8},
        {"model": model, "messages": [{"role": "user", "content": overflow}], "stream": True},
    ]
    out: list[str] = []
    with httpx.Client(base_url=base_url + "/v1", timeout=120) as client:
        for path, body in answered:
            response = client.post(path, json=body)
            assert response.status_code == 200, (path, response.status_code, response.text)
            if body.get("stream"):
                events = _stream_events(response.text)
                assert events, "a stream with no events"
                out.extend(events)
            else:
                out.append(json.dumps(_without_generated_text(response.json())))
            out.append(repr(dict(response.headers)))
        for body in refused:
            response = client.post("/chat/completions", json=body)
            assert response.status_code >= 400 or '"error"' in response.text, (body, response.text)
            out.append(f"{response.status_code} {dict(response.headers)!r} {response.text}")
        # the completions endpoint's own refusals
        response = client.post("/completions", json={"model": model, "prompt": NOTE, "echo": True})
        assert response.status_code == 400, response.text
        out.append(response.text)
    return out


def assert_gateway_clean(base_url: str, responses: list[str], audit_log_text: str) -> None:
    """No canary in the responses, the audit log or ``/metrics``."""
    for i, text in enumerate(responses):
        assert_no_canary(text, f"response {i} of the canary requests")
    assert_no_canary(audit_log_text, "the audit log")
    assert_no_canary(httpx.get(base_url + "/metrics").text, "the /metrics text")
