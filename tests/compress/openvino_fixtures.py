"""The OpenVINO export venv and tiny models exported to IR, for the OpenVINO tests.

The export venv (``build/openvino-venv``, :mod:`llm.compress.openvino_env`) is cached in the
repository's build folder: a CI run pays its creation once (docs/compression.md gives the
time) and later runs only check its stamp. The IRs are exported by the real ``optimum-cli``:
the serving tests' tiny random Llama (chat tokenizer, end-of-turn as EOS) with INT8 weights,
and the eval tests' tiny model with fp32 weights (answers scored on IR against torch, and
``compress report`` with an IR variant).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from llm.compress.openvino import OpenVINOSpec, export_openvino
from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401  (fixture)
from tests.train.fixtures import session_dir

REPO = Path(__file__).resolve().parents[2]


def ensure_export_venv(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Create or reuse build/openvino-venv (one builder across xdist workers)."""
    with FileLock(str(session_dir(tmp_path_factory) / "openvino-venv.lock")):
        subprocess.run(
            [sys.executable, str(REPO / "scripts" / "openvino_env.py")], check=True, timeout=1800
        )


def exported_ir(
    tmp_path_factory: pytest.TempPathFactory, source: Path, spec: OpenVINOSpec, name: str
) -> Path:
    """``source`` exported to IR as ``spec`` says, once per session, in ``openvino-ir/<name>``."""
    ensure_export_venv(tmp_path_factory)
    out = session_dir(tmp_path_factory) / "openvino-ir" / name
    with FileLock(str(out.parent) + ".lock"):
        if not (out / "manifest.json").is_file():
            export_openvino(source, out, spec)
    return out


@pytest.fixture(scope="session")
def tiny_openvino_ir(tmp_path_factory: pytest.TempPathFactory, text_model: Path) -> Path:
    """``text_model`` exported to OpenVINO IR with INT8 weights (and its OpenVINO tokenizer)."""
    return exported_ir(
        tmp_path_factory, text_model, OpenVINOSpec(method="openvino-int8"), "tiny-int8"
    )


@pytest.fixture(scope="session")
def eval_tiny_fp32_ir(tmp_path_factory: pytest.TempPathFactory, eval_assets: EvalAssets) -> Path:  # noqa: F811
    """The eval tests' tiny model (``eval_assets.tiny``) exported to IR with fp32 weights: the
    IR that must score answers as torch scores them."""
    return exported_ir(
        tmp_path_factory, eval_assets.tiny, OpenVINOSpec(method="openvino-fp32"), "eval-tiny-fp32"
    )
