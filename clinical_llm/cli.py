"""Entry point of the ``clinical-llm`` console script.

It checks what ``import llm`` resolves to (:func:`clinical_llm.import_name_conflict`)
before the first import of this project's ``llm`` package, so a shadowed ``llm``
gives a message that names the conflict instead of an ``ImportError`` from
inside the wrong package.
"""

from __future__ import annotations

import sys

from clinical_llm import import_name_conflict


def main() -> int:
    """Run the ``clinical-llm`` command after checking what ``llm`` resolves to."""
    problem = import_name_conflict()
    if problem is not None:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    # imported here, after the check: at module level a foreign `llm` would fail first
    from llm.cli import main as cli_main

    return cli_main()


if __name__ == "__main__":
    sys.exit(main())
