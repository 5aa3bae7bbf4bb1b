"""Create (or reuse) the Triton server's own virtualenv: ``build/triton-venv``.

Usage::

    python scripts/triton_env.py [--venv build/triton-venv] [--print-python]

``nvidia-pytriton`` (which bundles a real ``tritonserver`` binary with the
Python backend) requires ``numpy<2``, so it cannot share the project's venv
(numpy 2). The Triton server is a separate process anyway; the gateway only
needs ``tritonclient``. This venv holds: torch (the CPU build, installed first
so pip does not pull a CUDA one), nvidia-pytriton, and transformers,
safetensors and tokenizers pinned to the main venv's transformers series so
the exported model code behaves the same on both sides. Built, stamped and
locked as every side venv is (:class:`llm.side_venv.SideVenv`); the folder can
be moved with ``$CLINICAL_LLM_TRITON_VENV``.
"""

from __future__ import annotations

import sys

from llm.side_venv import SideVenv, build_main

VENV = SideVenv(
    folder="triton-venv",
    env_var="CLINICAL_LLM_TRITON_VENV",
    stamp="clinical-llm-triton.json",
    torch="torch==2.13.0",
    requirements=(
        "nvidia-pytriton==0.7.0",
        "transformers==5.19.*",
        "safetensors>=0.4",
        "tokenizers>=0.20",
    ),
)


if __name__ == "__main__":
    sys.exit(build_main(VENV, __doc__.splitlines()[0], "triton"))
