"""Canary PHI: prompt text must reach no log record, audit line, metric label or error message."""

from __future__ import annotations

import json
import logging

import httpx
import openai
import pytest

from serving.audit import load_audit_key, prompt_hmac
from serving.errors import BackendUnavailableError
from tests.serving.conftest import FakeBackend, LiveGateway, make_key

pytestmark = pytest.mark.slow

CANARIES = ("Zyxwvut Qqqname", "MRN 99887766", "555-0199-4321")
NOTE = f"Patient {CANARIES[0]} {CANARIES[1]} phone {CANARIES[2]} has chest pain"


def assert_clean(text: str, where: str) -> None:
    for canary in CANARIES:
        assert canary not in text, f"canary {canary!r} leaked into {where}"
        # no word-level fragments either (e.g. a name split over a log line)
        for word in canary.split():
            if len(word) >= 6:
                assert word not in text, f"canary fragment {word!r} leaked into {where}"


def test_canary_phi_never_leaks(
    live_gateway: LiveGateway,
    caplog: pytest.LogCaptureFixture,
    capfd: pytest.CaptureFixture[str],
) -> None:
    key, entry = make_key("clinic-app", ["tiny"])
    backend = FakeBackend(max_len=64)
    url = live_gateway(backend, keys=[entry], config_overrides={"max_body_bytes": 4096})
    client = openai.OpenAI(base_url=url.v1, api_key=key, max_retries=0)
    chat = [{"role": "user", "content": NOTE}]
    responses: list[str] = []
    with caplog.at_level(logging.DEBUG):
        client.chat.completions.create(model="tiny", messages=chat, max_tokens=2)  # type: ignore[arg-type]
        client.completions.create(model="tiny", prompt=NOTE, max_tokens=2)
        list(client.chat.completions.create(model="tiny", messages=chat, max_tokens=2, stream=True))  # type: ignore[arg-type]
        list(client.completions.create(model="tiny", prompt=NOTE, max_tokens=2, stream=True))
        bodies = [
            # unknown model named after the patient (404), and a forbidden one (403)
            {"model": NOTE, "prompt": NOTE},
            # context overflow (400)
            {"model": "tiny", "prompt": NOTE * 5, "max_tokens": 60},
            # invalid field value that carries the canary (400)
            {"model": "tiny", "prompt": NOTE, "temperature": NOTE},
            {"model": "tiny", "messages": [{"role": NOTE, "content": NOTE}]},
            # unknown fields whose names and values carry the canary (refused, 400)
            {"model": "tiny", "prompt": NOTE, "max_tokens": 1, NOTE: NOTE, "note": NOTE},
            # too large (413)
            {"model": "tiny", "prompt": NOTE * 100},
        ]
        for body in bodies:
            response = httpx.post(
                url.v1 + "/completions", json=body, headers={"Authorization": f"Bearer {key}"}
            )
            responses.append(response.text)
        # bad key while the prompt carries the canary (401)
        responses.append(httpx.post(url.v1 + "/completions", json=bodies[0]).text)
        # backend failure mid-stream and at start (503)
        backend.fail_with = BackendUnavailableError("engine lost")
        responses.append(
            httpx.post(
                url.v1 + "/chat/completions",
                json={"model": "tiny", "messages": chat, "stream": True},
                headers={"Authorization": f"Bearer {key}"},
            ).text
        )
        backend.fail_with = RuntimeError(f"tokenizer choked on {NOTE}")
        responses.append(
            httpx.post(
                url.v1 + "/completions",
                json={"model": "tiny", "prompt": NOTE},
                headers={"Authorization": f"Bearer {key}"},
            ).text
        )
        metrics = httpx.get(url + "/metrics").text
    statuses = [line["status"] for line in url.audit_lines()]
    assert statuses == [200, 200, 200, 200, 403, 400, 400, 400, 400, 413, 401, 503, 500]
    assert all('"error"' in text for i, text in enumerate(responses) if i != 4)
    assert_clean("\n".join(responses), "an error response")
    assert_clean(metrics, "the metrics")
    assert_clean(url.audit_log.read_text(), "the audit log")
    assert_clean("\n".join(r.getMessage() for r in caplog.records), "a log record")
    assert_clean(caplog.text, "the log output")
    out, err = capfd.readouterr()
    assert_clean(out + err, "the server's stdout/stderr")
    # the audit log can still be matched against a prompt the auditor holds
    first = url.audit_lines()[0]
    audit_key = load_audit_key(url.config.audit_key_file)
    assert first["prompt_hmac"] == prompt_hmac(audit_key, messages=chat)
    assert first["audit_key_id"] == audit_key.key_id
    assert audit_key.secret.decode() not in url.audit_log.read_text()
    assert json.dumps(first).count(key) == 0
