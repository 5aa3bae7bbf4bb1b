"""The OpenVINO export venv and a tiny model exported to IR, for the OpenVINO tests.

The export venv (``build/openvino-venv``, :mod:`llm.compress.openvino_env`) is cached in the
repository's build folder: a CI run pays its creation once (docs/compression.md gives the
time) and later runs only check its stamp. The IR is the serving tests' tiny random Llama
(chat tokenizer, end-of-turn as EOS) exported with INT8 weights by the real ``optimum-cli``.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from llm.compress.openvino import OpenVINOSpec, export_openvino
from tests.train.fixtures import session_dir

REPO = Path(__file__).resolve().parents[2]


def ensure_export_venv(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Create or reuse build/openvino-venv (one builder across xdist workers)."""
    with FileLock(str(session_dir(tmp_path_factory) / "openvino-venv.lock")):
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "openvino_env.py")], check=True, timeout=1800
        )


@pytest.fixture(scope="session")
def tiny_openvino_ir(tmp_path_factory: pytest.TempPathFactory, text_model: Path) -> Path:
    """``text_model`` exported to OpenVINO IR with INT8 weights (and its OpenVINO tokenizer)."""
    ensure_export_venv(tmp_path_factory)
    out = session_dir(tmp_path_factory) / "openvino-ir" / "tiny-int8"
    with FileLock(str(out.parent) + ".lock"):
        if not (out / "manifest.json").is_file():
            export_openvino(text_model, out, OpenVINOSpec(method="openvino-int8"))
    return out
