"""The console script stops with a clear message when ``import llm`` is not this project's."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from clinical_llm import import_name_conflict

CLI = str(Path(sys.executable).parent / "clinical-llm")
REPO = Path(__file__).resolve().parents[2]


def _run(argv: list[str], pythonpath: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run(argv, env=env, cwd=cwd, capture_output=True, text=True, timeout=120)


def _foreign_package(root: Path) -> None:
    """The PyPI ``llm`` package's shape: ``llm/cli.py`` with no ``main``."""
    (root / "llm").mkdir(parents=True)
    (root / "llm" / "__init__.py").write_text("")
    (root / "llm" / "cli.py").write_text("def cli():\n    pass\n")


def _foreign_metadata(root: Path) -> None:
    info = root / "llm-0.36.dist-info"
    info.mkdir(parents=True)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: llm\nVersion: 0.36\n")


def test_this_environment_has_no_conflict() -> None:
    assert import_name_conflict() is None


def test_the_pypi_llm_distribution_is_named_with_the_fix(tmp_path: Path) -> None:
    _foreign_package(tmp_path)
    _foreign_metadata(tmp_path)
    proc = _run([CLI, "--version"], tmp_path, tmp_path)
    assert proc.returncode == 2
    assert "the PyPI package 'llm' 0.36 is installed" in proc.stderr
    assert "pip uninstall llm" in proc.stderr
    assert "cannot import name" not in proc.stderr


def test_a_shadowing_llm_package_is_named(tmp_path: Path) -> None:
    _foreign_package(tmp_path)  # a folder named llm first on the path, no distribution
    proc = _run([CLI, "--version"], tmp_path, tmp_path)
    assert proc.returncode == 2
    assert f"'import llm' resolves to {tmp_path / 'llm' / '__init__.py'}" in proc.stderr


def test_module_entry_points_stop_too(tmp_path: Path) -> None:
    # run from the repository, where this project's llm wins the import: the
    # package itself refuses to load beside the foreign distribution
    _foreign_metadata(tmp_path)
    proc = _run([sys.executable, "-m", "llm.train", "--help"], tmp_path, REPO)
    assert proc.returncode != 0
    assert "the PyPI package 'llm' 0.36 is installed" in proc.stderr
