"""``clinical-llm serve``: the OpenAI-compatible gateway; ``serve keygen`` makes API keys.

The work is in :mod:`serving` (see docs/serving.md). Settings come from the
field defaults, then ``--config serve.yaml``, then these flags.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import typer
import yaml

from llm.cli.common import err_console, print_summary
from llm.errors import BadInputError

serve_app = typer.Typer(
    help="Serve models behind an OpenAI-compatible API (see docs/serving.md).",
    invoke_without_command=True,
    no_args_is_help=False,
)


def register(app: typer.Typer) -> None:
    """Add the ``serve`` command group to ``app``."""
    app.add_typer(serve_app, name="serve")


def parse_assignment(value: str, flag: str) -> tuple[str, str]:
    """Split ``NAME=VALUE`` from a flag.

    Raises:
        BadInputError: no ``=`` or an empty side.
    """
    name, sep, rest = value.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise BadInputError(f"{flag}: expected NAME=VALUE, got {value!r}")
    return name.strip(), rest.strip()


def cli_overrides(
    *,
    model: str | None,
    adapters: list[str],
    backend: str | None,
    backend_options: list[str],
    host: str | None,
    port: int | None,
    api_keys: Path | None,
    audit_log: Path | None,
) -> dict[str, Any]:
    """The serve flags as ServeConfig overrides (None for flags not given).

    Raises:
        BadInputError: a malformed NAME=PATH or KEY=VALUE flag.
    """
    overrides: dict[str, Any] = {
        "backend": backend,
        "host": host,
        "port": port,
        "api_keys_file": api_keys,
        "audit_log": audit_log,
    }
    if model is not None:
        overrides["model_name"], overrides["model_path"] = parse_assignment(model, "--model")
    if adapters:
        overrides["adapters"] = dict(parse_assignment(a, "--adapter") for a in adapters)
    if backend_options:
        options = {}
        for item in backend_options:
            key, raw = parse_assignment(item, "--backend-option")
            # values are YAML scalars so numbers and booleans keep their type
            options[key] = yaml.safe_load(raw)
        overrides["backend_options"] = options
    return overrides


@serve_app.callback()
def serve(
    ctx: typer.Context,
    model: str | None = typer.Option(
        None,
        "--model",
        help="Base model as NAME=PATH: a local model folder (transformers, vllm), a Triton URL "
        "(triton) or an upstream /v1 URL (openai). NAME is what clients send as 'model'.",
    ),
    adapter: list[str] = typer.Option(
        [],
        "--adapter",
        help="A fine-tuned adapter served as its own model, NAME=PATH (repeatable).",
    ),
    backend: str | None = typer.Option(
        None, "--backend", help="Backend: transformers (default), vllm, openai or triton."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="serve.yaml with any ServeConfig field; flags override it."
    ),
    host: str | None = typer.Option(
        None,
        "--host",
        help="Bind address (default 127.0.0.1). Any non-loopback address requires API keys.",
    ),
    port: int | None = typer.Option(None, "--port", help="Port (default 8000)."),
    api_keys: Path | None = typer.Option(
        None,
        "--api-keys",
        help="API keys file (YAML or JSONL with id, sha256, models); see 'serve keygen'.",
    ),
    audit_log: Path | None = typer.Option(
        None,
        "--audit-log",
        help="Audit log JSONL path (default serve-audit.jsonl); never holds prompt text.",
    ),
    backend_option: list[str] = typer.Option(
        [],
        "--backend-option",
        help="A backend setting KEY=VALUE, added to backend_options (repeatable).",
    ),
) -> None:
    """Serve MODEL (and its adapters) over the OpenAI API until interrupted."""
    if ctx.invoked_subcommand is not None:
        return
    from serving.config import load_serve_config
    from serving.server import run_server

    settings = load_serve_config(
        config,
        cli_overrides(
            model=model,
            adapters=adapter,
            backend=backend,
            backend_options=backend_option,
            host=host,
            port=port,
            api_keys=api_keys,
            audit_log=audit_log,
        ),
    )
    settings.backend_settings()  # fail fast (exit 2) before any engine is imported
    logging.basicConfig(
        level=settings.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    # a server has no closing moment (uvicorn ends on a signal), so the summary line
    # saying where things are is printed once the settings are known
    run_server(settings, announce=print_summary)


@serve_app.command("keygen")
def keygen(
    key_id: str = typer.Option(..., "--id", help="Key id (shown in the audit log)."),
    keys_file: Path = typer.Option(
        ..., "--keys-file", help="Keys file to add the entry to (YAML by suffix, else JSONL)."
    ),
    models: str = typer.Option(
        "*", "--models", help="Comma-separated model names this key may use; * for all."
    ),
) -> None:
    """Create an API key: its SHA-256 goes into KEYS_FILE, the key is printed once."""
    from serving.keys import ApiKeyEntry, append_key, generate_key, hash_key

    allowed = [m.strip() for m in models.split(",") if m.strip()]
    if not allowed:
        raise BadInputError("--models: give at least one model name, or *")
    key = generate_key()
    append_key(keys_file, ApiKeyEntry(id=key_id, sha256=hash_key(key), models=allowed))
    err_console.print("API key (shown once; store it in the client's secret store):")
    typer.echo(key)
    print_summary(f"key {key_id!r} added to {keys_file} (allowed models: {', '.join(allowed)})")
