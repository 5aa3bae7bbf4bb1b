"""``python -m llm.train RECIPE.yaml [--set k=v …] [--resume] [--dry-run]``.

The module form that ``accelerate launch -m llm.train`` starts in every
process; it parses exactly what ``clinical-llm train`` parses.
"""

import sys

from llm.cli.train import main

sys.exit(main())
