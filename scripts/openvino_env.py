"""Create (or reuse) the OpenVINO export virtualenv: ``build/openvino-venv``.

Usage::

    python scripts/openvino_env.py [--venv build/openvino-venv] [--print-python]

What it holds and why it is apart: :mod:`llm.compress.openvino_env` (docs/compression.md).
``clinical-llm compress make --method openvino-*`` builds it on first use too.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from llm.compress.openvino_env import default_venv, ensure_openvino_venv


def main() -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--venv",
        type=Path,
        default=default_venv(),
        help="Venv folder (default: build/openvino-venv).",
    )
    parser.add_argument(
        "--print-python", action="store_true", help="Print only the venv's interpreter path."
    )
    args = parser.parse_args()
    started = time.monotonic()
    python = ensure_openvino_venv(args.venv)
    if args.print_python:
        print(python)
    else:
        print(f"openvino venv ready in {time.monotonic() - started:.1f} s: {args.venv}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
