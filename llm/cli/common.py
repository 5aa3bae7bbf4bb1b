"""Small pieces every CLI command shares: consoles, progress, summaries."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TypeVar

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from llm.data.io import ReadStats

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
