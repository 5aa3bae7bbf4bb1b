"""``clinical-llm data …``: synthesise, import, validate, de-identify and build task datasets."""

from __future__ import annotations

import typer

from llm.cli.data import build, deid, importers, synth, validate

data_app = typer.Typer(
    help="Clinical records: synthesise, import, validate, de-identify, build datasets.",
    no_args_is_help=True,
)
for _module in (synth, importers, validate, deid, build):
    _module.register(data_app)
