"""API keys: file formats, hashing, 401/403 over a live server, and the loopback rule."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import openai
import pytest

from llm.errors import BadInputError, RecordError
from serving.auth import KeyRing, check_exposure, load_keyring
from serving.config import ServeConfig, is_loopback
from serving.keys import ApiKeyEntry, append_key, hash_key, load_key_file, load_keys
from tests.serving.conftest import FakeBackend, LiveGateway, make_key


def test_hash_is_sha256_hex() -> None:
    assert hash_key("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"


def test_jsonl_and_yaml_files_round_trip(tmp_path: Path) -> None:
    entry = ApiKeyEntry(id="app", sha256=hash_key("k"), models=["tiny"])
    for name in ("keys.jsonl", "keys.yaml"):
        path = tmp_path / name
        append_key(path, entry)
        append_key(path, ApiKeyEntry(id="ops", sha256=hash_key("k2")))
        assert [e.id for e in load_key_file(path)] == ["app", "ops"]
        assert load_key_file(path)[0].models == ["tiny"]
        assert path.stat().st_mode & 0o077 == 0
    assert "k2" not in (tmp_path / "keys.jsonl").read_text().replace(hash_key("k2"), "")


def test_bad_entry_names_file_line_and_field(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    good = json.dumps({"id": "a", "sha256": hash_key("x")})
    path.write_text(good + "\n" + json.dumps({"id": "b", "sha256": "not-a-hash"}) + "\n")
    with pytest.raises(RecordError) as err:
        load_key_file(path)
    assert (err.value.line, err.value.field) == (2, "sha256")
    assert str(path) in str(err.value)


def test_duplicate_ids_and_unknown_fields_rejected(tmp_path: Path) -> None:
    path = tmp_path / "keys.jsonl"
    row = {"id": "a", "sha256": hash_key("x")}
    path.write_text(json.dumps(row) + "\n" + json.dumps(row) + "\n")
    with pytest.raises(BadInputError, match="duplicate key id 'a'"):
        load_key_file(path)
    path.write_text(json.dumps({**row, "key": "raw"}) + "\n")
    with pytest.raises(RecordError, match="key"):
        load_key_file(path)


def test_env_var_keys(tmp_path: Path) -> None:
    env = {"CLINICAL_LLM_API_KEYS": json.dumps([{"id": "env", "sha256": hash_key("e")}])}
    ring = KeyRing(load_keys(None, env))
    assert ring.authenticate("Bearer e").key_id == "env"


def test_keyring_checks() -> None:
    raw, entry = make_key("app", ["tiny"])
    ring = KeyRing([entry])
    caller = ring.authenticate(f"Bearer {raw}")
    assert caller.key_id == "app"
    caller.check_model("tiny")
    with pytest.raises(Exception, match="not allowed"):
        caller.check_model("other")
    for header in (None, "", "Bearer", "Basic abc", f"Bearer {raw}x"):
        with pytest.raises(Exception) as err:
            ring.authenticate(header)
        assert getattr(err.value, "status_code", None) == 401


@pytest.mark.parametrize(
    ("host", "loopback"),
    [("127.0.0.1", True), ("::1", True), ("localhost", True), ("0.0.0.0", False),
     ("10.1.2.3", False), ("::", False), ("gateway.internal", False)],
)  # fmt: skip
def test_is_loopback(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


def test_non_loopback_without_keys_refused() -> None:
    with pytest.raises(BadInputError, match="API keys are required"):
        check_exposure(ServeConfig(host="0.0.0.0"), KeyRing([]))
    with pytest.raises(BadInputError, match="require_api_keys"):
        check_exposure(ServeConfig(require_api_keys=True), KeyRing([]))
    check_exposure(ServeConfig(host="0.0.0.0"), KeyRing([make_key("a")[1]]))


def test_load_keyring_reads_the_file_once_and_checks_the_host(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("CLINICAL_LLM_API_KEYS", raising=False)
    keys = tmp_path / "keys.jsonl"
    append_key(keys, make_key("app")[1])
    assert len(load_keyring(ServeConfig(host="0.0.0.0", api_keys_file=keys))) == 1
    with pytest.raises(BadInputError, match="API keys are required"):
        load_keyring(ServeConfig(host="0.0.0.0"))


@pytest.mark.slow
def test_live_401_403_and_filtered_models(
    live_gateway: LiveGateway, fake_backend: FakeBackend
) -> None:
    all_key, all_entry = make_key("all")
    notes_key, notes_entry = make_key("notes-app", ["tiny-notes"])
    url = live_gateway(fake_backend, keys=[all_entry, notes_entry])

    def client(key: str) -> openai.OpenAI:
        return openai.OpenAI(base_url=url.v1, api_key=key, max_retries=0)

    with pytest.raises(openai.AuthenticationError):
        client("wrong").completions.create(model="tiny", prompt="a", max_tokens=1)
    assert httpx.get(url + "/v1/models").status_code == 401
    with pytest.raises(openai.PermissionDeniedError):
        client(notes_key).completions.create(model="tiny", prompt="a", max_tokens=1)
    client(notes_key).completions.create(model="tiny-notes", prompt="a", max_tokens=1)
    client(all_key).completions.create(model="tiny", prompt="a", max_tokens=1)
    assert [m.id for m in client(notes_key).models.list()] == ["tiny-notes"]
    # health, readiness and metrics stay open for probes and scrapers
    assert httpx.get(url + "/ready").status_code == 200
    lines = url.audit_lines()
    assert [(line["key_id"], line["status"]) for line in lines[:4]] == [
        (None, 401), (None, 401), ("notes-app", 403), ("notes-app", 200)
    ]  # fmt: skip
    assert all_key not in url.audit_log.read_text()
    assert fake_backend.started == 2
