"""Create (or reuse) the Triton server's own virtualenv: ``build/triton-venv``.

Usage::

    python scripts/triton_env.py [--venv build/triton-venv] [--print-python]

``nvidia-pytriton`` (which bundles a real ``tritonserver`` binary with the
Python backend) requires ``numpy<2``, so it cannot share the project's venv
(numpy 2). The Triton server is a separate process anyway; the gateway only
needs ``tritonclient``. This venv holds: torch (the CPU build, installed first
so pip does not pull a CUDA one), nvidia-pytriton, and transformers,
safetensors and tokenizers pinned to the main venv's transformers series so
the exported model code behaves the same on both sides.

Idempotent: a stamp file records the requirement set; a re-run with the same
set only checks the stamp (well under a second). A file lock makes concurrent
callers (pytest-xdist workers) wait for one creator instead of racing.
"""

from __future__ import annotations

import argparse
import fcntl
import hashlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_VENV = REPO_ROOT / "build" / "triton-venv"
STAMP = "clinical-llm-triton.json"

# torch first and alone: the CPU build; the later install must not replace it.
TORCH_REQUIREMENT = "torch==2.13.0"
REQUIREMENTS = (
    "nvidia-pytriton==0.7.0",
    "transformers==5.19.*",
    "safetensors>=0.4",
    "tokenizers>=0.20",
)


def venv_python(venv: Path) -> Path:
    """The interpreter of ``venv``."""
    return venv / "bin" / "python"


def _wanted_stamp() -> dict[str, object]:
    requirements = [TORCH_REQUIREMENT, *REQUIREMENTS]
    digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
    return {
        "requirements": requirements,
        "sha256": digest,
        "python": f"{sys.version_info.major}.{sys.version_info.minor}",
    }


def _stamp_matches(venv: Path, wanted: dict[str, object]) -> bool:
    try:
        stamp = json.loads((venv / STAMP).read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return False
    return (
        isinstance(stamp, dict)
        and stamp.get("sha256") == wanted["sha256"]
        and venv_python(venv).exists()
    )


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", *args]
    subprocess.run(cmd, check=True)


def ensure_triton_venv(venv: Path = DEFAULT_VENV) -> Path:
    """Create ``venv`` with the Triton server's packages unless its stamp says it is done.

    Args:
        venv: where the virtualenv lives.

    Returns:
        The venv's Python interpreter.

    Raises:
        subprocess.CalledProcessError: venv creation or a pip install failed.
    """
    venv.parent.mkdir(parents=True, exist_ok=True)
    wanted = _wanted_stamp()
    lock_path = venv.parent / f".{venv.name}.lock"
    with open(lock_path, "w", encoding="utf-8") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if _stamp_matches(venv, wanted):
            return venv_python(venv)
        started = time.monotonic()
        # a half-built venv from an interrupted run is reused: pip skips what is there
        (venv / STAMP).unlink(missing_ok=True)
        base = getattr(sys, "_base_executable", sys.executable)
        subprocess.run([base, "-m", "venv", str(venv)], check=True)
        _pip(venv, "--upgrade", "pip")
        _pip(venv, TORCH_REQUIREMENT)
        _pip(venv, *REQUIREMENTS)
        # pytriton's resolver may try to move torch; keep the CPU build we installed
        _pip(venv, "--no-deps", TORCH_REQUIREMENT)
        stamp = {**wanted, "seconds": round(time.monotonic() - started, 1)}
        (venv / STAMP).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
    return venv_python(venv)


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--venv", type=Path, default=DEFAULT_VENV, help="Venv folder (default: build/triton-venv)."
    )
    parser.add_argument(
        "--print-python", action="store_true", help="Print only the venv's interpreter path."
    )
    args = parser.parse_args()
    started = time.monotonic()
    python = ensure_triton_venv(args.venv)
    if args.print_python:
        print(python)
    else:
        print(f"triton venv ready in {time.monotonic() - started:.1f} s: {args.venv}")
    return 0


if __name__ == "__main__":
    os.environ.setdefault("PIP_NO_INPUT", "1")
    sys.exit(main())
