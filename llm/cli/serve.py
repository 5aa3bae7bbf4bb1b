"""``clinical-llm serve``: the OpenAI-compatible gateway; ``serve keygen`` makes API keys.

The work is in :mod:`serving` (see docs/serving.md). Settings come from the
field defaults, then ``--config serve.yaml``, then these flags.
"""

from __future__ import annotations

import logging
from pathlib import Path

import typer

from llm.cli.common import err_console, print_summary
from llm.errors import BadInputError
from serving.config import ServeConfig, ServeOverrides, load_serve_config
from serving.keys import ApiKeyEntry

serve_app = typer.Typer(
    help="Serve models behind an OpenAI-compatible API (see docs/serving.md).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command group to ``app``."""
    app.add_typer(serve_app, name="serve")


def _help(name: str, usage: str = "", note: str = "") -> str:
    """The help of the flag that sets ``ServeConfig.name``: usage, description, note, default.

    The config model's field descriptions and defaults are the one source, so the
    help cannot drift from what the gateway does.
    """
    field = ServeConfig.model_fields[name]
    parts = [usage, field.description or "", note]
    default = field.get_default(call_default_factory=True)
    if default not in (None, {}):
        parts.append(f"Default: {default}.")
    return " ".join(part for part in parts if part)


def _key_help(name: str) -> str:
    return ApiKeyEntry.model_fields[name].description or ""


@serve_app.callback()
def serve(
    ctx: typer.Context,
    model: str | None = typer.Option(
        None,
        "--model",
        help=f"Base model as NAME=PATH. NAME: {_help('model_name')} PATH: {_help('model_path')}",
    ),
    adapter: list[str] = typer.Option(
        [], "--adapter", help=_help("adapters", "NAME=PATH, repeatable.")
    ),
    backend: str | None = typer.Option(None, "--backend", help=_help("backend")),
    config: Path | None = typer.Option(
        None, "--config", help="serve.yaml with any ServeConfig field; flags override it."
    ),
    host: str | None = typer.Option(None, "--host", help=_help("host")),
    port: int | None = typer.Option(None, "--port", help=_help("port")),
    api_keys: Path | None = typer.Option(
        None, "--api-keys", help=_help("api_keys_file", note="See 'serve keygen'.")
    ),
    audit_log: Path | None = typer.Option(None, "--audit-log", help=_help("audit_log")),
    backend_option: list[str] = typer.Option(
        [],
        "--backend-option",
        help=_help("backend_options", "KEY=VALUE (a YAML scalar), repeatable."),
    ),
) -> None:
    """Serve MODEL (and its adapters) over the OpenAI API until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    from serving.server import run_server

    overrides = ServeOverrides.from_flags(
        model=model,
        adapters=adapter,
        backend_options=backend_option,
        backend=backend,
        host=host,
        port=port,
        api_keys_file=api_keys,
        audit_log=audit_log,
    )
    settings = load_serve_config(config, overrides)
    settings.backend_settings()  # fail fast (exit 2) before any engine is imported
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # a server has no closing moment (uvicorn ends on a signal), so the summary line
    # saying where things are is printed once the settings are known
    run_server(settings, announce=print_summary)


@serve_app.command("keygen")
def keygen(
    key_id: str = typer.Option(..., "--id", help=_key_help("id")),
    keys_file: Path = typer.Option(
        ..., "--keys-file", help="Keys file to add the entry to (YAML by suffix, else JSONL)."
    ),
    models: str = typer.Option(
        ",".join(ApiKeyEntry.model_fields["models"].get_default(call_default_factory=True)),
        "--models",
        help=f"Comma-separated. {_key_help('models')}",
    ),
) -> None:
    """Create an API key: its SHA-256 goes into KEYS_FILE, the key is printed once."""
    from serving.keys import append_key, generate_key, hash_key

    allowed = [m.strip() for m in models.split(",") if m.strip()]
    if not allowed:
        raise BadInputError("--models: give at least one model name, or *")
    key = generate_key()
    append_key(keys_file, ApiKeyEntry(id=key_id, sha256=hash_key(key), models=allowed))
    err_console.print("API key (shown once; store it in the client's secret store):")
    typer.echo(key)
    print_summary(f"key {key_id!r} added to {keys_file} (allowed models: {', '.join(allowed)})")
