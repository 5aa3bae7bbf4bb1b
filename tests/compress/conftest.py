"""A tiny random Llama with the chat tokenizer, saved once per session as a source folder."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.export.helpers import make_base
from tests.models.conftest import chat_tokenizer  # noqa: F401  (fixture)


@pytest.fixture(scope="session")
def source_model(tmp_path_factory: pytest.TempPathFactory, chat_tokenizer: Any) -> Path:  # noqa: F811
    """Model folder: 2 layers, hidden 64, intermediate 128 (divisible by 4 and 32)."""
    return make_base(tmp_path_factory.mktemp("compress-source"), chat_tokenizer)
