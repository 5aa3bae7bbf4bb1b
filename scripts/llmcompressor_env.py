"""Create (or reuse) the llm-compressor virtualenv: ``build/llmcompressor-venv``.

Usage::

    python scripts/llmcompressor_env.py [--venv build/llmcompressor-venv] [--print-python]

What it holds and why it is apart: :mod:`llm.compress.llmcompressor_env` (docs/compression.md).
``clinical-llm compress make --method llmcompressor-*`` needs it and says so when missing.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from llm.compress.llmcompressor_env import default_venv, ensure_llmcompressor_venv


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--venv",
        type=Path,
        default=default_venv(),
        help="Venv folder (default: build/llmcompressor-venv).",
    )
    parser.add_argument(
        "--print-python", action="store_true", help="Print only the venv's interpreter path."
    )
    args = parser.parse_args()
    started = time.monotonic()
    python = ensure_llmcompressor_venv(args.venv)
    if args.print_python:
        print(python)
    else:
        print(f"llm-compressor venv ready in {time.monotonic() - started:.1f} s: {args.venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
