"""The import rule that import-linter cannot see: no module takes another package's private names.

Layers and cycles are import-linter contracts (``[tool.importlinter]`` in
pyproject.toml, run by ``make test``). A name with a leading underscore is
private to the package that defines it; reaching for one from elsewhere means
the piece belongs in a shared layer under a public name (docs/architecture.md).
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGES = ("clinical_llm", "llm", "eval", "serving")


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(REPO).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _package_of(module: str, is_package: bool) -> str:
    return module if is_package else module.rpartition(".")[0]


def private_imports(source: str, importer: str, *, is_package: bool = False) -> list[str]:
    """``importer -> module.name`` for each private name ``source`` takes from another package."""
    own_package = _package_of(importer, is_package)
    found = []
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.ImportFrom) or node.level or node.module is None:
            continue
        if node.module.split(".")[0] not in PACKAGES:
            continue
        source_package = (
            node.module
            if (REPO / node.module.replace(".", "/") / "__init__.py").is_file()
            else node.module.rpartition(".")[0]
        )
        for alias in node.names:
            private = alias.name.startswith("_") and not alias.name.startswith("__")
            if private and source_package != own_package:
                found.append(f"{importer} -> {node.module}.{alias.name} (line {node.lineno})")
    return found


def test_no_module_takes_another_packages_private_names() -> None:
    files = [f for package in PACKAGES for f in sorted((REPO / package).rglob("*.py"))]
    assert len(files) > 100  # the walk found the tree
    found = [
        line
        for f in files
        for line in private_imports(
            f.read_text(encoding="utf-8"), _module_name(f), is_package=f.name == "__init__.py"
        )
    ]
    assert found == []


@pytest.mark.parametrize(
    ("source", "expected"),
    [
        ("from llm.train.safe_resume import _allowed_globals\n", 1),
        ("from llm.export.folder import _earlier_export_files\n", 0),  # its own package
        ("from llm.export import __version__, check\n", 0),
    ],
)
def test_the_check_sees_a_private_import(source: str, expected: int) -> None:
    assert len(private_imports(source, "llm.export.zero")) == expected


def uvicorn_configs_that_reconfigure_logging(source: str) -> list[int]:
    """Lines of ``uvicorn.Config(...)`` calls without ``log_config=None``.

    uvicorn's default log config runs ``logging.config.dictConfig``, which closes every
    handler the process has: pytest's own (every later test then fails with "I/O operation
    on closed file"), or the program's that embeds the gateway.
    """
    lines = []
    for node in ast.walk(ast.parse(source)):
        if not (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)):
            continue
        if node.func.attr != "Config" or ast.unparse(node.func.value) != "uvicorn":
            continue
        keep = any(
            k.arg == "log_config" and isinstance(k.value, ast.Constant) and k.value.value is None
            for k in node.keywords
        )
        if not keep:
            lines.append(node.lineno)
    return lines


def test_no_uvicorn_server_reconfigures_the_processs_logging() -> None:
    found = [
        f"{path.relative_to(REPO)}:{line}"
        for folder in (*PACKAGES, "tests", "scripts")
        for path in sorted((REPO / folder).rglob("*.py"))
        for line in uvicorn_configs_that_reconfigure_logging(path.read_text(encoding="utf-8"))
    ]
    assert found == [], "uvicorn.Config without log_config=None: " + ", ".join(found)


def test_the_uvicorn_check_sees_a_default_config() -> None:
    assert uvicorn_configs_that_reconfigure_logging("uvicorn.Config(app, port=1)") == [1]
    assert uvicorn_configs_that_reconfigure_logging("uvicorn.Config(app, log_config=None)") == []
