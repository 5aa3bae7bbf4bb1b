"""Create (or reuse) the OpenVINO export virtualenv: ``build/openvino-venv``.

Usage::

    python scripts/openvino_env.py [--venv build/openvino-venv] [--print-python]

What it holds and why it is apart: :mod:`llm.compress.openvino_env` (docs/compression.md).
``clinical-llm compress make --method openvino-*`` builds it on first use too.
"""

from __future__ import annotations

import sys

from llm.compress.openvino_env import VENV
from llm.side_venv import build_main

if __name__ == "__main__":
    sys.exit(build_main(VENV, __doc__.splitlines()[0], "openvino"))
