"""Small pieces every CLI command shares: consoles, progress, summaries, exit codes."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from llm.data.io import ReadStats
from llm.errors import ClinicalLLMError

T = TypeVar("T")

# Progress and diagnostics go to stderr so stdout stays parseable.
err_console = Console(stderr=True)
out_console = Console()


def progress_bar() -> Progress:
    """A progress display for long loops (disabled automatically when not a TTY)."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        TimeRemainingColumn(),
        console=err_console,
        transient=True,
    )


def track(items: Iterable[T], *, description: str, total: int | None = None) -> Iterator[T]:
    """Iterate ``items`` while showing a progress bar on stderr."""
    with progress_bar() as bar:
        task = bar.add_task(description, total=total)
        for item in items:
            yield item
            bar.advance(task)


def print_read_stats(stats: ReadStats) -> None:
    """Print the ``read N = used U + rejected R`` line every reading command ends with."""
    err_console.print(stats.summary(), highlight=False, soft_wrap=True)


def print_summary(line: str) -> None:
    """The single closing line of a command: what it did and where its outputs are."""
    out_console.print(line, highlight=False, soft_wrap=True)


def run_app(
    app: typer.Typer | Callable[..., Any], argv: list[str] | None, *, prog_name: str
) -> int:
    """Run a Typer app in standalone mode and turn how it ended into an exit code.

    The one error-to-exit-code mapping of every entry point (``clinical-llm``,
    ``python -m llm.train``): click prints usage errors itself and exits 2; a
    :class:`~llm.errors.ClinicalLLMError` is printed as one ``error:`` line on
    stderr and exits with its own code.

    Args:
        app: the Typer app, or the click command it made (a running command's root).
        argv: arguments (default: ``sys.argv[1:]``).
        prog_name: the program name usage lines show.

    Returns:
        0 ok, 1 a check failed, 2 bad input or usage.
    """
    try:
        app(args=argv, prog_name=prog_name)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except ClinicalLLMError as exc:
        # escaped: messages hold literal brackets (clinical-llm[qlora], [q_proj, k_proj])
        message = escape(str(exc))
        err_console.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
        return exc.exit_code
    return 0
