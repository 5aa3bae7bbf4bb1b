"""The audit log: one JSON line per request, with no prompt or completion text.

A line records who (key id, never the key), what (model, endpoint), the
outcome (status, error type), the cost (token counts, latency, time to first
token) and a keyed hash of the prompt (HMAC-SHA256), so an auditor who holds
both a prompt and the gateway's audit key can find its requests, while anyone
holding only the log cannot confirm a guessed prompt (an unkeyed SHA-256 would
let them: hash the guess and look it up).

The key lives outside the log (:func:`load_audit_key`): ``CLINICAL_LLM_AUDIT_KEY``,
or a key file (created on first start with 32 random bytes, mode 0600, in a
0700 folder; an existing one readable by group or others is refused).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import os
import secrets
import stat
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO

from llm.errors import BadInputError

AUDIT_KEY_ENV = "CLINICAL_LLM_AUDIT_KEY"
# A key given by hand must carry at least 128 bits even as plain hex.
MIN_KEY_CHARS = 32


@dataclass(frozen=True)
class AuditKey:
    """The secret of the prompt hashes, and a public fingerprint naming it.

    Attributes:
        secret: the HMAC key (never logged, never written to the audit log).
        key_id: the first 16 hex characters of SHA-256 over the secret; each audit line
            carries it, so an auditor knows which key (which gateway, which rotation)
            hashed the line. It reveals nothing about the secret that helps guessing.
    """

    secret: bytes
    key_id: str

    @classmethod
    def of(cls, secret: bytes) -> AuditKey:
        """Wrap ``secret`` and compute its fingerprint."""
        digest = hashlib.sha256(b"clinical-llm audit key id\0" + secret).hexdigest()
        return cls(secret=secret, key_id=digest[:16])

    def __repr__(self) -> str:
        return f"AuditKey(key_id={self.key_id!r})"


def load_audit_key(key_file: Path, environ: dict[str, str] | None = None) -> AuditKey:
    """The audit key: ``CLINICAL_LLM_AUDIT_KEY`` when set, else ``key_file`` (created if absent).

    Args:
        key_file: where the key is kept; created with 32 random bytes (hex), mode 0600,
            its folder 0700, when it does not exist.
        environ: the environment (default ``os.environ``).

    Returns:
        The key.

    Raises:
        BadInputError: the variable or the file holds fewer than 32 characters, the file is
            readable or writable by group or others, or it cannot be read or created.
    """
    env = os.environ if environ is None else environ
    given = env.get(AUDIT_KEY_ENV, "").strip()
    if given:
        if len(given) < MIN_KEY_CHARS:
            raise BadInputError(
                f"{AUDIT_KEY_ENV}: the audit key must have at least {MIN_KEY_CHARS} characters "
                "(e.g. python -c 'import secrets; print(secrets.token_hex(32))')"
            )
        return AuditKey.of(given.encode("utf-8"))
    try:
        if not key_file.exists():
            _create_key_file(key_file)
        mode = stat.S_IMODE(key_file.stat().st_mode)
        if mode & 0o077:
            raise BadInputError(
                f"{key_file}: the audit key file is open to group or others "
                f"(mode {mode:04o}); run chmod 600 {key_file}"
            )
        text = key_file.read_text(encoding="utf-8").strip()
    except OSError as exc:
        raise BadInputError(f"{key_file}: cannot read or create the audit key file "
                            f"({exc.strerror or type(exc).__name__})") from None  # fmt: skip
    if len(text) < MIN_KEY_CHARS:
        raise BadInputError(
            f"{key_file}: the audit key must have at least {MIN_KEY_CHARS} characters"
        )
    return AuditKey.of(text.encode("utf-8"))


def _create_key_file(key_file: Path) -> None:
    """Write a new random key, readable by its owner only (no window with wider permissions)."""
    key_file.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    try:
        fd = os.open(key_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        return  # another gateway created it first: use theirs
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(secrets.token_hex(32) + "\n")


def prompt_hmac(
    key: AuditKey, prompt: str | None = None, messages: list[dict[str, Any]] | None = None
) -> str:
    """HMAC-SHA256 of a prompt string or of chat messages in canonical JSON.

    Args:
        key: the audit key.
        prompt: the completion prompt.
        messages: the chat messages (hashed as sorted-key compact JSON, so the digest does
            not depend on field order).

    Returns:
        64 hex characters.
    """
    if messages is not None:
        payload = json.dumps(messages, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    else:
        payload = prompt or ""
    return hmac.new(key.secret, payload.encode("utf-8"), hashlib.sha256).hexdigest()


@dataclass
class AuditRecord:
    """One request as the audit log holds it."""

    request_id: str
    endpoint: str
    key_id: str | None = None
    model: str | None = None
    status: int = 0
    error_type: str | None = None
    stream: bool = False
    prompt_tokens: int | None = None
    completion_tokens: int | None = None
    latency_ms: float | None = None
    ttft_ms: float | None = None
    prompt_hmac: str | None = None
    audit_key_id: str | None = None
    time: str = ""


class AuditLog:
    """Appends :class:`AuditRecord` lines to a JSONL file (thread-safe, flushed per line).

    Args:
        path: the log file; its folder is created, the file is appended to.
        key: the key of the prompt hashes (:meth:`hash_prompt`).
    """

    def __init__(self, path: Path, key: AuditKey) -> None:
        self.path = path
        self.key = key
        self._lock = threading.Lock()
        self._fh: TextIO | None = None

    def open(self) -> None:
        """Open the file for appending (done at start-up so a bad path fails early).

        Raises:
            OSError: the folder cannot be created or the file cannot be opened.
        """
        with self._lock:
            if self._fh is None:
                self._fh = self._open_file()

    def hash_prompt(
        self, prompt: str | None = None, messages: list[dict[str, Any]] | None = None
    ) -> str:
        """:func:`prompt_hmac` of a prompt under this log's key."""
        return prompt_hmac(self.key, prompt, messages)

    def write(self, record: AuditRecord) -> None:
        """Append one record, stamped with the current UTC time and the key's fingerprint."""
        if record.prompt_hmac is not None:
            record.audit_key_id = self.key.key_id
        record.time = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        line = json.dumps(asdict(record), ensure_ascii=False) + "\n"
        with self._lock:
            if self._fh is None:
                self._fh = self._open_file()
            self._fh.write(line)
            self._fh.flush()

    def _open_file(self) -> TextIO:
        # a new log is its owner's only (0600, folder 0700): request metadata is still private
        self.path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        return os.fdopen(fd, "a", encoding="utf-8")

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
