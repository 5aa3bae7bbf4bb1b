"""API key files: entries of key id, SHA-256 of the key, and the models it may use.

Two file formats, chosen by suffix:

- YAML (``.yaml``/``.yml``): ``keys: [{id: app1, sha256: <hex>, models: ["*"]}]``
- JSONL (anything else): one ``{"id", "sha256", "models"}`` object per line.

The ``CLINICAL_LLM_API_KEYS`` environment variable may hold the same entries
as JSONL (one per line) or a JSON list. Raw keys are never stored: only their
SHA-256, which :func:`hash_key` computes and ``clinical-llm serve keygen`` writes.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llm.errors import BadInputError, RecordError

ENV_VAR = "CLINICAL_LLM_API_KEYS"
KEY_PREFIX = "sk-clin-"
_HEX64 = re.compile(r"^[0-9a-f]{64}$")


class ApiKeyEntry(BaseModel):
    """One API key as stored: never the key itself."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="Key id, written to the audit log.")
    sha256: str = Field(description="Lower-case hex SHA-256 of the key.")
    models: list[str] = Field(
        default_factory=lambda: ["*"],
        description='Model names this key may use; ["*"] allows every served model.',
    )

    @field_validator("sha256")
    @classmethod
    def _hex_digest(cls, value: str) -> str:
        value = value.lower()
        if not _HEX64.match(value):
            raise ValueError("must be the 64-character hex SHA-256 of the key")
        return value

    def allows(self, model: str) -> bool:
        """True when this key may use ``model``."""
        return "*" in self.models or model in self.models


def hash_key(key: str) -> str:
    """SHA-256 hex digest of an API key (what key files store).

    Args:
        key: the raw key a client sends as ``Authorization: Bearer <key>``.

    Returns:
        64 lower-case hex characters.
    """
    return hashlib.sha256(key.encode("utf-8")).hexdigest()


def generate_key() -> str:
    """A new random API key (256 bits of entropy)."""
    return KEY_PREFIX + secrets.token_urlsafe(32)


def _entry(raw: Any, source: str, line: int) -> ApiKeyEntry:
    if not isinstance(raw, dict):
        raise RecordError(source, line, "<line>", "a key entry must be an object")
    try:
        return ApiKeyEntry.model_validate(raw)
    except ValidationError as exc:
        err = exc.errors(include_input=False)[0]
        field = ".".join(str(part) for part in err["loc"]) or "<line>"
        raise RecordError(source, line, field, err["msg"]) from None


def parse_jsonl_keys(text: str, source: str) -> list[ApiKeyEntry]:
    """Entries of a JSONL key list (or one JSON list).

    Args:
        text: the file or environment variable contents.
        source: its name for error messages.

    Returns:
        The entries in order.

    Raises:
        RecordError: a line is not JSON or not a valid entry (file, line and field named).
    """
    stripped = text.strip()
    if stripped.startswith("["):
        try:
            rows = json.loads(stripped)
        except json.JSONDecodeError as exc:
            raise RecordError(source, exc.lineno, "<line>", "not valid JSON") from None
        return [_entry(row, source, 1) for row in rows]
    entries = []
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            raise RecordError(source, number, "<line>", "not valid JSON") from None
        entries.append(_entry(row, source, number))
    return entries


def load_key_file(path: Path) -> list[ApiKeyEntry]:
    """Read an API key file (YAML or JSONL, by suffix).

    Args:
        path: the keys file.

    Returns:
        Its entries.

    Raises:
        BadInputError: missing or unreadable file, bad YAML/JSON, a bad entry, or a
            duplicate key id (the file, line and field are named).
    """
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"{path}: cannot read API keys file ({exc.strerror})") from exc
    if path.suffix in (".yaml", ".yml"):
        try:
            loaded = yaml.safe_load(text) or {}
        except yaml.YAMLError:
            raise BadInputError(f"{path}: not valid YAML") from None
        rows = loaded.get("keys") if isinstance(loaded, dict) else None
        if not isinstance(rows, list):
            raise BadInputError(f"{path}: keys: expected a list of key entries under 'keys:'")
        entries = [_entry(row, f"{path} keys[{i}]", i + 1) for i, row in enumerate(rows)]
    else:
        entries = parse_jsonl_keys(text, str(path))
    _check_unique(entries, str(path))
    return entries


def _check_unique(entries: list[ApiKeyEntry], source: str) -> None:
    seen: set[str] = set()
    for entry in entries:
        if entry.id in seen:
            raise BadInputError(f"{source}: id: duplicate key id {entry.id!r}")
        seen.add(entry.id)


def load_keys(path: Path | None, env: dict[str, str] | None = None) -> list[ApiKeyEntry]:
    """Every configured key: the file's entries plus those of ``CLINICAL_LLM_API_KEYS``.

    Args:
        path: the keys file, or None.
        env: the environment to read (``os.environ`` when None).

    Returns:
        All entries (empty when no keys are configured).

    Raises:
        BadInputError: a bad file, a bad environment value, or a key id given twice.
    """
    import os

    environ = os.environ if env is None else env
    entries = load_key_file(path) if path is not None else []
    env_text = environ.get(ENV_VAR, "")
    if env_text.strip():
        entries += parse_jsonl_keys(env_text, f"${ENV_VAR}")
    _check_unique(entries, str(path) if path else f"${ENV_VAR}")
    return entries


def append_key(path: Path, entry: ApiKeyEntry) -> None:
    """Add ``entry`` to a keys file (created when missing), keeping its format.

    Args:
        path: the keys file (YAML by suffix, JSONL otherwise).
        entry: the new entry.

    Raises:
        BadInputError: the file is invalid or already has this key id.
    """
    existing = load_key_file(path) if path.exists() else []
    if any(old.id == entry.id for old in existing):
        raise BadInputError(f"{path}: id: key id {entry.id!r} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    if path.suffix in (".yaml", ".yml"):
        rows = [old.model_dump() for old in [*existing, entry]]
        path.write_text(yaml.safe_dump({"keys": rows}, sort_keys=False), encoding="utf-8")
    else:
        with path.open("a", encoding="utf-8") as fh:
            fh.write(json.dumps(entry.model_dump()) + "\n")
    # Hashes are not secrets, but the file decides who may call: keep it private.
    path.chmod(0o600)
