"""Loading and running the scripts under ``scripts/`` from their tests."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

REPO = Path(__file__).resolve().parents[2]


def load_script(name: str) -> ModuleType:
    """``scripts/<name>.py`` imported as module ``name`` (to test its functions)."""
    spec = importlib.util.spec_from_file_location(name, REPO / f"scripts/{name}.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def run_script(name: str, args: list[str], json_out: Path) -> dict[str, Any]:
    """Run ``scripts/<name>.py ARGS --json JSON_OUT`` in JSON_OUT's folder; returns its report.

    Fails the test with the script's output when it exits non-zero.
    """
    argv = [sys.executable, str(REPO / f"scripts/{name}.py"), *args, "--json", str(json_out)]
    proc = subprocess.run(argv, capture_output=True, text=True, timeout=600, cwd=json_out.parent)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return dict(json.loads(json_out.read_text()))
