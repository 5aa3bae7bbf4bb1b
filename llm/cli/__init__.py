"""The ``clinical-llm`` command: one verb per stage.

Exit codes: 0 ok, 1 a requested check failed, 2 bad input or usage.
"""

from __future__ import annotations

import sys

import typer

from llm import __version__
from llm.cli import compress, demo, export, launch, model, train
from llm.cli import eval as eval_cli
from llm.cli import serve as serve_cli
from llm.cli.common import run_app
from llm.cli.data import data_app
from llm.env import set_private_env

app = typer.Typer(
    name="clinical-llm",
    help="Clinical records to a fine-tuned, fairness-checked LLM behind an OpenAI-compatible API.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)
app.add_typer(data_app, name="data")
model.register(app)
train.register(app)
launch.register(app)
export.register(app)
compress.register(app)
eval_cli.register(app)
demo.register(app)
serve_cli.register(app)


def _version(value: bool) -> None:
    if value:
        print(f"clinical-llm {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    version: bool = typer.Option(
        False, "--version", callback=_version, is_eager=True, help="Print the version and exit."
    ),
) -> None:
    """Clinical records to a fine-tuned, fairness-checked LLM behind an OpenAI-compatible API."""


def main(argv: list[str] | None = None) -> int:
    """Entry point of the console script. Returns the process exit code."""
    set_private_env()
    return run_app(app, argv, prog_name="clinical-llm")


if __name__ == "__main__":
    sys.exit(main())
