"""``clinical-llm serve``: config precedence, exit-2 errors, keygen, and a real server process."""

from __future__ import annotations

import os
import stat
import subprocess
import sys
import time
from pathlib import Path

import httpx
import openai
import pytest

from llm.cli import main
from llm.errors import BadInputError
from llm.net import free_port
from serving.config import ServeConfig, ServeOverrides, load_serve_config
from serving.keys import load_key_file
from tests.serving.conftest import FakeBackend, LiveGateway


def test_flags_override_yaml_override_defaults(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text(
        "backend: openai\nport: 9000\nmax_queue: 3\nbackend_options: {timeout_s: 10}\n"
        "adapters: {a: /x}\n"
    )
    flags = ServeOverrides.from_flags(
        port=9100, host=None, backend_options=["api_key_env=K"], adapters=["b=/y"]
    )
    settings = load_serve_config(config, flags)
    assert settings.backend == "openai"  # from the file
    assert settings.port == 9100  # flag wins
    assert settings.host == "127.0.0.1"  # default (the None flag is ignored)
    assert settings.max_queue == 3
    assert settings.backend_options == {"timeout_s": 10, "api_key_env": "K"}
    assert settings.adapters == {"a": Path("/x"), "b": Path("/y")}


def test_model_flag_is_parsed_into_typed_fields() -> None:
    flags = ServeOverrides.from_flags(
        model="clinic = http://lb:8000/v1", backend_options=["timeout_s=10", "eager=true"]
    )
    assert (flags.model_name, flags.model_path) == ("clinic", "http://lb:8000/v1")
    assert flags.backend_options == {"timeout_s": 10, "eager": True}  # YAML scalars
    with pytest.raises(BadInputError, match="--adapter: expected NAME=VALUE"):
        ServeOverrides.from_flags(adapters=["no-equals-sign"])


def test_help_is_the_config_fields_descriptions_and_defaults(
    capsys: pytest.CaptureFixture[str],
) -> None:
    assert main(["serve", "--help"]) == 0
    text = " ".join(capsys.readouterr().out.split())
    for name in ("host", "port", "audit_log", "backend"):
        field = ServeConfig.model_fields[name]
        assert field.description is not None
        # rich wraps the help into a box; compare the words without the borders
        words = " ".join(field.description.split()[:4])
        assert words in text.replace("│", " ").replace("  ", " "), name
        if field.default_factory is None:  # audit_log's default is an XDG path, named in words
            assert str(field.default) in text


def test_config_errors_listed_with_file_and_field(tmp_path: Path) -> None:
    config = tmp_path / "serve.yaml"
    config.write_text("max_queue: -1\nprot: 8000\n")
    code = main(["serve", "--config", str(config), "--model", "m=/x"])
    assert code == 2
    with pytest.raises(Exception) as err:
        load_serve_config(config)
    assert str(config) in str(err.value)
    assert "max_queue" in str(err.value) and "prot" in str(err.value)


@pytest.mark.parametrize(
    "args",
    [
        ["serve", "--model", "no-equals-sign"],
        ["serve", "--model", "m=/x", "--host", "0.0.0.0"],
        ["serve", "--model", "m=/x", "--backend", "bogus"],
        ["serve", "--model", "m=/x", "--api-keys", "/does/not/exist.jsonl"],
        ["serve"],
    ],
)
def test_bad_usage_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert "error" in capsys.readouterr().err.lower()


def test_keygen_writes_hash_and_prints_key_once(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = tmp_path / "keys.yaml"
    args = ["serve", "keygen", "--id", "app", "--models", "tiny,tiny-notes"]
    assert main([*args, "--keys-file", str(keys)]) == 0
    key = capsys.readouterr().out.splitlines()[0]
    assert key.startswith("sk-clin-")
    assert key not in keys.read_text()
    entry = load_key_file(keys)[0]
    assert (entry.id, entry.models) == ("app", ["tiny", "tiny-notes"])
    assert main(["serve", "keygen", "--id", "app", "--keys-file", str(keys)]) == 2


@pytest.mark.slow
def test_serve_process_answers_openai_client(
    live_gateway: LiveGateway, fake_backend: FakeBackend, tmp_path: Path
) -> None:
    """The real command, as a user types it (openai backend over a FakeBackend upstream)."""
    upstream = live_gateway(fake_backend)
    keys = tmp_path / "keys.jsonl"
    subprocess.run(
        [sys.executable, "-m", "llm", "serve", "keygen", "--id", "ops", "--keys-file", str(keys)],
        check=True,
        capture_output=True,
        text=True,
    )
    key = subprocess.run(
        [sys.executable, "-m", "llm", "serve", "keygen", "--id", "app", "--keys-file", str(keys)],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.splitlines()[0]
    port = free_port()
    audit = tmp_path / "audit.jsonl"
    # the audit key goes to its default place, under this test's XDG config folder
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "XDG_CONFIG_HOME": str(tmp_path / "config")}
    env.pop("CLINICAL_LLM_API_KEYS", None)
    env.pop("CLINICAL_LLM_AUDIT_KEY", None)
    process = subprocess.Popen(
        [sys.executable, "-m", "llm", "serve", "--backend", "openai",
         "--model", f"clinic={upstream.v1}", "--backend-option", "upstream_model=tiny",
         "--port", str(port), "--api-keys", str(keys), "--audit-log", str(audit)],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            assert process.poll() is None, process.communicate()[1]
            try:
                if httpx.get(f"http://127.0.0.1:{port}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert time.monotonic() < deadline, "server did not become ready"
            time.sleep(0.2)
        client = openai.OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key=key, max_retries=0)
        out = client.chat.completions.create(
            model="clinic", messages=[{"role": "user", "content": "hi"}], max_tokens=2
        )
        assert out.choices[0].message.content == "alpha bravo "
        streamed = client.completions.create(model="clinic", prompt="x", max_tokens=2, stream=True)
        assert "".join(c.choices[0].text for c in streamed if c.choices) == "alpha bravo "
    finally:
        process.terminate()
        stdout, stderr = process.communicate(timeout=30)
    assert f"serving clinic (openai) at http://127.0.0.1:{port}/v1; audit log: {audit}" in stdout
    assert "Traceback" not in stderr
    assert [line.count('"key_id": "app"') for line in audit.read_text().splitlines()] == [1, 1]
    key_file = tmp_path / "config" / "clinical-llm" / "audit-hmac.key"
    assert stat.S_IMODE(key_file.stat().st_mode) == 0o600
    assert key_file.read_text().strip() not in audit.read_text()
