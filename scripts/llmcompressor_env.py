"""Create (or reuse) the llm-compressor virtualenv: ``build/llmcompressor-venv``.

Usage::

    python scripts/llmcompressor_env.py [--venv build/llmcompressor-venv] [--print-python]

What it holds and why it is apart: :mod:`llm.compress.llmcompressor_env` (docs/compression.md).
``clinical-llm compress make --method llmcompressor-*`` needs it and says so when missing.
"""

from __future__ import annotations

import sys

from llm.compress.llmcompressor_env import VENV
from llm.side_venv import build_main

if __name__ == "__main__":
    sys.exit(build_main(VENV, __doc__.splitlines()[0], "llm-compressor"))
