"""The audit log's keyed prompt hash and where its key and file live."""

from __future__ import annotations

import hashlib
import json
import stat
from pathlib import Path

import pytest

from llm.errors import BadInputError
from serving.audit import AUDIT_KEY_ENV, AuditLog, AuditRecord, load_audit_key, prompt_hmac
from serving.config import ServeConfig

MESSAGES = [{"role": "user", "content": "Patient Zyxwvut Qqqname has chest pain"}]


def _mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_key_file_is_created_owner_only_and_reused(tmp_path: Path) -> None:
    key_file = tmp_path / "secrets" / "audit-hmac.key"
    first = load_audit_key(key_file, environ={})
    assert _mode(key_file) == 0o600 and _mode(key_file.parent) == 0o700
    assert len(key_file.read_text().strip()) == 64  # 32 random bytes as hex
    again = load_audit_key(key_file, environ={})
    assert again.secret == first.secret and again.key_id == first.key_id
    assert first.secret.decode() not in repr(first)


def test_env_key_overrides_the_file(tmp_path: Path) -> None:
    key_file = tmp_path / "audit-hmac.key"
    key = load_audit_key(key_file, environ={AUDIT_KEY_ENV: "k" * 40})
    assert key.secret == b"k" * 40
    assert not key_file.exists()
    with pytest.raises(BadInputError, match=f"{AUDIT_KEY_ENV}: .* at least 32 characters"):
        load_audit_key(key_file, environ={AUDIT_KEY_ENV: "short"})


def test_key_file_open_to_others_or_too_short_is_refused(tmp_path: Path) -> None:
    key_file = tmp_path / "audit-hmac.key"
    key_file.write_text("a" * 64)
    key_file.chmod(0o644)
    too_open = r"open to group or others \(mode 0644\); run chmod 600"
    with pytest.raises(BadInputError, match=too_open):
        load_audit_key(key_file, environ={})
    key_file.chmod(0o600)
    key_file.write_text("abc\n")
    with pytest.raises(BadInputError, match="at least 32 characters"):
        load_audit_key(key_file, environ={})


def test_prompt_hash_is_keyed(tmp_path: Path) -> None:
    one = load_audit_key(tmp_path / "one.key", environ={})
    two = load_audit_key(tmp_path / "two.key", environ={})
    digest = prompt_hmac(one, messages=MESSAGES)
    assert len(digest) == 64
    # a guessed prompt cannot be confirmed without the key: the unkeyed hash differs,
    # and so does the hash under another key
    canonical = json.dumps(MESSAGES, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    assert digest != hashlib.sha256(canonical.encode()).hexdigest()
    assert digest != prompt_hmac(two, messages=MESSAGES)
    assert one.key_id != two.key_id
    # field order does not change it; the prompt does
    reordered = [{"content": MESSAGES[0]["content"], "role": "user"}]
    assert prompt_hmac(one, messages=reordered) == digest
    assert prompt_hmac(one, prompt="a") != prompt_hmac(one, prompt="b")


def test_log_lines_name_the_key_and_the_file_is_owner_only(tmp_path: Path) -> None:
    key = load_audit_key(tmp_path / "audit.key", environ={})
    log = AuditLog(tmp_path / "state" / "audit.jsonl", key)
    log.open()
    record = AuditRecord(request_id="r1", endpoint="/v1/completions")
    record.prompt_hmac = log.hash_prompt(prompt="x")
    log.write(record)
    log.write(AuditRecord(request_id="r2", endpoint="/v1/models"))
    log.close()
    with_prompt, without = [json.loads(line) for line in log.path.read_text().splitlines()]
    assert with_prompt["prompt_hmac"] == prompt_hmac(key, prompt="x")
    assert with_prompt["audit_key_id"] == key.key_id
    assert without["prompt_hmac"] is None and without["audit_key_id"] is None
    assert _mode(log.path) == 0o600
    assert key.secret.decode() not in log.path.read_text()


def test_default_locations_follow_xdg(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))
    config = ServeConfig()
    assert config.audit_log == tmp_path / "state" / "clinical-llm" / "serve-audit.jsonl"
    assert config.audit_key_file == tmp_path / "config" / "clinical-llm" / "audit-hmac.key"
    # relative XDG values are ignored (the spec), so the log never lands in the current folder
    monkeypatch.setenv("XDG_STATE_HOME", "relative")
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert ServeConfig().audit_log == tmp_path / "home/.local/state/clinical-llm/serve-audit.jsonl"
