"""A virtualenv of its own for a tool that cannot share the project's environment.

The OpenVINO exporter (:mod:`llm.compress.openvino_env`), llm-compressor
(:mod:`llm.compress.llmcompressor_env`) and the Triton server (``scripts/triton_env.py``:
nvidia-pytriton needs numpy<2) pin other numpy, transformers, torch extras or
compressed-tensors versions than the project's environment, so each runs in a venv of its
own, as a separate process. :class:`SideVenv` is what all three do with theirs: torch's CPU
build installed first and alone (so pip does not pull a CUDA one), then the tool's
requirements, then any package the tool pulls in that breaks beside that torch uninstalled
again. A stamp file records the requirement set: a re-run with the same set only checks the
stamp, a half-built venv from an interrupted run is reused (pip skips what is there), and a
file lock makes concurrent builders wait for one. Nothing is downloaded except packages,
from the configured package index, while building.
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
from dataclasses import dataclass
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class SideVenv:
    """One tool's virtualenv: where it lives, what it holds, how it is stamped.

    Attributes:
        folder: the default folder's name under ``build/``.
        env_var: the environment variable that overrides the folder.
        stamp: the stamp file's name inside the venv.
        torch: torch's requirement, installed first and alone.
        requirements: the tool's requirements, installed with ``torch`` pinned again.
        removed: packages uninstalled after the install (recorded in the stamp).
    """

    folder: str
    env_var: str
    stamp: str
    torch: str
    requirements: tuple[str, ...]
    removed: tuple[str, ...] = ()

    def default_venv(self) -> Path:
        """``$<env_var>``, else ``build/<folder>`` in the repository."""
        configured = os.environ.get(self.env_var)
        return Path(configured) if configured else REPO_ROOT / "build" / self.folder

    def wanted_stamp(self) -> dict[str, object]:
        """What the stamp of a finished venv holds: the requirements and their digest."""
        requirements = [self.torch, *self.requirements]
        if self.removed:
            requirements.append(f"uninstalled: {', '.join(self.removed)}")
        digest = hashlib.sha256("\n".join(requirements).encode()).hexdigest()
        return {
            "requirements": requirements,
            "sha256": digest,
            "python": f"{sys.version_info.major}.{sys.version_info.minor}",
        }

    def ready(self, venv: Path) -> bool:
        """Whether ``venv`` was built, completely, for the current requirement set."""
        try:
            stamp = json.loads((venv / self.stamp).read_text(encoding="utf-8"))
        except (OSError, json.JSONDecodeError):
            return False
        return (
            isinstance(stamp, dict)
            and stamp.get("sha256") == self.wanted_stamp()["sha256"]
            and venv_python(venv).exists()
        )

    def ensure(self, venv: Path | None = None) -> Path:
        """Create ``venv`` with the tool's packages unless its stamp says it is done.

        Args:
            venv: where the virtualenv lives (default :meth:`default_venv`).

        Returns:
            The venv's Python interpreter.

        Raises:
            subprocess.CalledProcessError: venv creation or a pip install failed.
        """
        venv = venv or self.default_venv()
        venv.parent.mkdir(parents=True, exist_ok=True)
        wanted = self.wanted_stamp()
        with open(venv.parent / f".{venv.name}.lock", "w", encoding="utf-8") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            if self.ready(venv):
                return venv_python(venv)
            started = time.monotonic()
            # a half-built venv from an interrupted run is reused: pip skips what is there
            (venv / self.stamp).unlink(missing_ok=True)
            base = getattr(sys, "_base_executable", sys.executable)
            subprocess.run([base, "-m", "venv", str(venv)], check=True)
            _pip(venv, "--upgrade", "pip")
            _pip(venv, self.torch)
            _pip(venv, *self.requirements, self.torch)
            if self.removed:
                uninstall = [str(venv_python(venv)), "-m", "pip", "uninstall", "-y"]
                subprocess.run([*uninstall, *self.removed], check=True)
            stamp = {**wanted, "seconds": round(time.monotonic() - started, 1)}
            (venv / self.stamp).write_text(json.dumps(stamp, indent=2), encoding="utf-8")
        return venv_python(venv)


def build_main(venv: SideVenv, description: str, label: str) -> int:
    """The command line of ``scripts/<tool>_env.py``: build or reuse ``venv``'s folder.

    Args:
        venv: the tool's side venv.
        description: the script's one-line description (``--help``).
        label: the tool's name in the closing line, e.g. ``openvino``.

    Returns:
        0 once the venv is ready (``--print-python``: its interpreter is printed).
    """
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument(
        "--venv",
        type=Path,
        default=venv.default_venv(),
        help=f"Venv folder (default: build/{venv.folder}).",
    )
    parser.add_argument(
        "--print-python", action="store_true", help="Print only the venv's interpreter path."
    )
    args = parser.parse_args()
    started = time.monotonic()
    python = venv.ensure(args.venv)
    if args.print_python:
        print(python)
    else:
        print(f"{label} venv ready in {time.monotonic() - started:.1f} s: {args.venv}")
    return 0


def venv_python(venv: Path) -> Path:
    """The interpreter of ``venv``."""
    return venv / "bin" / "python"


def _pip(venv: Path, *args: str) -> None:
    cmd = [str(venv_python(venv)), "-m", "pip", "install", "--disable-pip-version-check", *args]
    subprocess.run(cmd, check=True, env={**os.environ, "PIP_NO_INPUT": "1"})
