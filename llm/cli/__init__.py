"""The ``clinical-llm`` command: one verb per stage.

Exit codes: 0 ok, 1 a requested check failed, 2 bad input or usage.
"""

from __future__ import annotations

import sys

import typer
from rich.markup import escape

from llm import __version__
from llm.cli import demo, export, model, train
from llm.cli import eval as eval_cli
from llm.cli import serve as serve_cli
from llm.cli.common import err_console
from llm.cli.data import data_app
from llm.env import set_private_env
from llm.errors import ClinicalLLMError

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
export.register(app)
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
    try:
        # Standalone mode: click prints usage errors itself and exits 2.
        app(args=argv, prog_name="clinical-llm")
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ClinicalLLMError as exc:
        # escaped: messages hold literal brackets (clinical-llm[qlora], [q_proj, k_proj])
        message = escape(str(exc))
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return exc.exit_code
    return 0


if __name__ == "__main__":
    sys.exit(main())
