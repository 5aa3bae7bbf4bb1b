"""The audit log: one JSON line per request, with no prompt or completion text.

A line records who (key id, never the key), what (model, endpoint), the
outcome (status, error type), the cost (token counts, latency, time to first
token) and a SHA-256 of the prompt, so a request can be matched against a
prompt the auditor already holds without the log ever containing it.
"""

from __future__ import annotations

import hashlib
import json
import threading
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, TextIO


def prompt_sha256(prompt: str | None = None, messages: list[dict[str, Any]] | None = None) -> str:
    """SHA-256 of a prompt string or of chat messages in canonical JSON.

    Args:
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
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


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
    prompt_sha256: str | None = None
    time: str = ""


class AuditLog:
    """Appends :class:`AuditRecord` lines to a JSONL file (thread-safe, flushed per line).

    Args:
        path: the log file; its folder is created, the file is appended to.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._fh: TextIO | None = None

    def open(self) -> None:
        """Open the file for appending (done at start-up so a bad path fails early).

        Raises:
            OSError: the folder cannot be created or the file cannot be opened.
        """
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._lock:
            if self._fh is None:
                self._fh = self.path.open("a", encoding="utf-8")

    def write(self, record: AuditRecord) -> None:
        """Append one record, stamped with the current UTC time."""
        record.time = datetime.now(timezone.utc).isoformat(timespec="milliseconds")
        line = json.dumps(asdict(record), ensure_ascii=False) + "\n"
        with self._lock:
            if self._fh is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self._fh = self.path.open("a", encoding="utf-8")
            self._fh.write(line)
            self._fh.flush()

    def close(self) -> None:
        """Close the file."""
        with self._lock:
            if self._fh is not None:
                self._fh.close()
                self._fh = None
