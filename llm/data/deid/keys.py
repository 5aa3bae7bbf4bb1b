"""The de-identification key and strategy names: cheap to import (no Presidio).

The key is the secret that per-patient date offsets and surrogate values are
derived from (HMAC). It is read from a file or the environment and never
written next to the data.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from llm.errors import BadInputError

STRATEGIES: tuple[str, ...] = ("tag", "surrogate")
KEY_ENV = "CLINICAL_LLM_DEID_KEY"
MIN_KEY_BYTES = 16


def load_key(key_file: str | Path | None = None) -> tuple[bytes, bool]:
    """The secret that date offsets and surrogates are derived from.

    Args:
        key_file: a file holding the key (its text, surrounding whitespace ignored).

    Returns:
        ``(key, generated)``: the key from ``key_file``, else from the
        ``CLINICAL_LLM_DEID_KEY`` environment variable, else a fresh random key
        (``generated`` is then true: offsets will differ on the next run).

    Raises:
        BadInputError: the key file is missing or the key is shorter than 16 bytes.
    """
    if key_file is not None:
        path = Path(key_file)
        if not path.is_file():
            raise BadInputError(f"{path}: key file not found")
        key = path.read_bytes().strip()
        source = str(path)
    elif os.environ.get(KEY_ENV):
        key = os.environ[KEY_ENV].strip().encode("utf-8")
        source = f"${KEY_ENV}"
    else:
        return secrets.token_bytes(32), True
    if len(key) < MIN_KEY_BYTES:
        raise BadInputError(
            f"{source}: de-identification key must be at least {MIN_KEY_BYTES} bytes"
        )
    return key, False
