"""The CLI starts without loading heavy libraries: each command imports its own when it runs."""

from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "transformers", "presidio_analyzer", "spacy", "datasets", "deepspeed")


def test_importing_the_cli_loads_no_heavy_library() -> None:
    code = (
        f"import json, sys, llm.cli; print(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []
