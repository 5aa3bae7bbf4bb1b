"""Gateway settings: one typed model, loaded from ``serve.yaml`` and overridden by CLI flags.

Override order: field defaults < the YAML file < explicit CLI flags
(:class:`ServeOverrides`). Unknown keys are errors, and every problem in the
file is reported at once, naming the file and the field. Backend-specific
settings live under ``backend_options:`` and are passed to the backend
untouched. The field descriptions are also the ``clinical-llm serve --help``.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from llm.errors import BadInputError
from serving.backends.base import BackendSettings

BackendName = Literal["transformers", "vllm", "openai", "triton", "openvino"]

LOOPBACK_HOSTS = frozenset({"localhost", "ip6-localhost"})


def _xdg_dir(variable: str, fallback: str) -> Path:
    # the XDG base-directory rule: an unset, empty or relative value means the fallback
    value = os.environ.get(variable, "")
    base = Path(value) if value and Path(value).is_absolute() else Path.home() / fallback
    return base / "clinical-llm"


def default_state_dir() -> Path:
    """Where the gateway keeps what it records (the audit log): ``$XDG_STATE_HOME/clinical-llm``.

    Returns:
        ``$XDG_STATE_HOME/clinical-llm``, or ``~/.local/state/clinical-llm`` when unset.
    """
    return _xdg_dir("XDG_STATE_HOME", ".local/state")


def default_config_dir() -> Path:
    """Where the gateway keeps its secrets (the audit key): ``$XDG_CONFIG_HOME/clinical-llm``.

    Returns:
        ``$XDG_CONFIG_HOME/clinical-llm``, or ``~/.config/clinical-llm`` when unset.
    """
    return _xdg_dir("XDG_CONFIG_HOME", ".config")


def is_loopback(host: str) -> bool:
    """True when ``host`` only accepts connections from this machine.

    Args:
        host: the bind address (``127.0.0.1``, ``::1``, ``localhost``, ``0.0.0.0`` ...).

    Returns:
        Whether the address is a loopback one; ``0.0.0.0``/``::`` (all interfaces) are not.
    """
    if host.lower() in LOOPBACK_HOSTS:
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        # A DNS name other than localhost may resolve anywhere: treat it as exposed.
        return False


class ServeConfig(BaseModel):
    """Everything ``clinical-llm serve`` needs; each description is also the docs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: BackendName = Field(
        "transformers",
        description="Generation backend: transformers, vllm, openai, triton or openvino.",
    )
    model_name: str | None = Field(
        None, min_length=1, description="Served name of the base model (what clients send)."
    )
    model_path: str | None = Field(
        None,
        min_length=1,
        description="Local model folder (transformers, vllm), OpenVINO IR folder (openvino), "
        "Triton URL (triton) or upstream /v1 base URL (openai).",
    )
    adapters: dict[str, Path] = Field(
        default_factory=dict,
        description="Fine-tuned adapters served as their own model names: name -> adapter folder.",
    )
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description="The backend's own settings, passed to it as they are."
    )
    host: str = Field(
        "127.0.0.1",
        min_length=1,
        description="Address to bind; any non-loopback address requires API keys.",
    )
    port: int = Field(8000, ge=0, le=65535, description="Port to bind (0 picks a free one).")
    api_keys_file: Path | None = Field(
        None,
        description="API keys file (YAML or JSONL: id, sha256, models). Keys may also come "
        "from the CLINICAL_LLM_API_KEYS environment variable.",
    )
    require_api_keys: bool = Field(
        False,
        description="Refuse to start without API keys even on loopback (always required "
        "when the host is not loopback).",
    )
    audit_log: Path = Field(
        default_factory=lambda: default_state_dir() / "serve-audit.jsonl",
        description="Audit log (JSONL, one line per request; never prompt or completion text). "
        "Default: $XDG_STATE_HOME/clinical-llm/serve-audit.jsonl (~/.local/state/...).",
    )
    audit_key_file: Path = Field(
        default_factory=lambda: default_config_dir() / "audit-hmac.key",
        description="Key of the audit log's prompt hashes (HMAC-SHA256), created with mode 0600 "
        "when absent; CLINICAL_LLM_AUDIT_KEY overrides it. Default: "
        "$XDG_CONFIG_HOME/clinical-llm/audit-hmac.key (~/.config/...), apart from the log.",
    )
    max_body_bytes: int = Field(
        16 * 1024 * 1024,
        ge=1024,
        description="Largest accepted request body in bytes (413 above it); images count.",
    )
    max_tokens_cap: int = Field(
        4096, ge=1, description="Largest max_tokens a request may ask for (400 above it)."
    )
    default_max_tokens: int = Field(
        256,
        ge=1,
        description="max_tokens when a request leaves it out (shortened to fit the context).",
    )
    max_n: int = Field(8, ge=1, description="Largest n (choices per request).")
    request_timeout_s: float = Field(
        300.0,
        gt=0,
        description="Per-request time limit, queueing included (504, or an error event when "
        "streaming).",
    )
    max_concurrency: int = Field(
        8, ge=1, description="Requests generating at the same time (in flight)."
    )
    max_queue: int = Field(
        32, ge=0, description="Requests waiting for a slot; beyond it the gateway answers 429."
    )
    retry_after_s: float = Field(
        1.0, gt=0, description="Retry-After seconds sent with 429 answers."
    )
    log_level: Literal["debug", "info", "warning", "error"] = Field(
        "info", description="Log level of the gateway and uvicorn."
    )

    @field_validator("adapters")
    @classmethod
    def _adapter_names(cls, adapters: dict[str, Path]) -> dict[str, Path]:
        for name in adapters:
            if not name.strip():
                raise ValueError("adapter names must not be empty")
        return adapters

    def served_names(self) -> list[str]:
        """The base model name followed by every adapter name."""
        names = [self.model_name] if self.model_name else []
        return names + list(self.adapters)

    def backend_settings(self) -> BackendSettings:
        """What the backend is told to serve.

        Raises:
            BadInputError: no model name or path is set.
        """
        if not self.model_name or not self.model_path:
            raise BadInputError(
                "model: set --model NAME=PATH (or model_name and model_path in serve.yaml)"
            )
        if self.model_name in self.adapters:
            raise BadInputError(
                f"adapters.{self.model_name}: an adapter cannot share the base model's name"
            )
        return BackendSettings(
            model_name=self.model_name,
            model_path=self.model_path,
            adapters=dict(self.adapters),
            options=dict(self.backend_options),
        )


def parse_assignment(value: str, flag: str) -> tuple[str, str]:
    """Split the ``NAME=VALUE`` of a flag such as ``--model``.

    Raises:
        BadInputError: no ``=`` or an empty side.
    """
    name, sep, rest = value.partition("=")
    if not sep or not name.strip() or not rest.strip():
        raise BadInputError(f"{flag}: expected NAME=VALUE, got {value!r}")
    return name.strip(), rest.strip()


def _described(name: str) -> str:
    return ServeConfig.model_fields[name].description or ""


class ServeOverrides(BaseModel):
    """The settings given as ``clinical-llm serve`` flags, applied over ``serve.yaml``.

    A field left unset (None, or empty for the mappings) keeps the file's value;
    ``adapters`` and ``backend_options`` are merged key by key. Values are checked
    by :class:`ServeConfig` with the file's, so every problem is reported at once.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    backend: str | None = Field(None, description=_described("backend"))
    model_name: str | None = Field(None, description=_described("model_name"))
    model_path: str | None = Field(None, description=_described("model_path"))
    adapters: dict[str, str] = Field(default_factory=dict, description=_described("adapters"))
    backend_options: dict[str, Any] = Field(
        default_factory=dict, description=_described("backend_options")
    )
    host: str | None = Field(None, description=_described("host"))
    port: int | None = Field(None, description=_described("port"))
    api_keys_file: Path | None = Field(None, description=_described("api_keys_file"))
    audit_log: Path | None = Field(None, description=_described("audit_log"))

    @classmethod
    def from_flags(
        cls,
        *,
        model: str | None = None,
        adapters: Sequence[str] = (),
        backend_options: Sequence[str] = (),
        backend: str | None = None,
        host: str | None = None,
        port: int | None = None,
        api_keys_file: Path | None = None,
        audit_log: Path | None = None,
    ) -> ServeOverrides:
        """Parse the flags written as assignments; the others are taken as they are.

        Args:
            model: ``--model NAME=PATH``.
            adapters: each ``--adapter NAME=PATH``.
            backend_options: each ``--backend-option KEY=VALUE`` (values are YAML scalars,
                so numbers and booleans keep their type).
            backend: ``--backend`` (None when the flag was not given; likewise below).
            host: ``--host``.
            port: ``--port``.
            api_keys_file: ``--api-keys``.
            audit_log: ``--audit-log``.

        Raises:
            BadInputError: a malformed NAME=PATH or KEY=VALUE flag.
        """
        model_name, model_path = parse_assignment(model, "--model") if model else (None, None)
        options = {}
        for item in backend_options:
            key, raw = parse_assignment(item, "--backend-option")
            options[key] = yaml.safe_load(raw)
        return cls(
            model_name=model_name,
            model_path=model_path,
            adapters=dict(parse_assignment(item, "--adapter") for item in adapters),
            backend_options=options,
            backend=backend,
            host=host,
            port=port,
            api_keys_file=api_keys_file,
            audit_log=audit_log,
        )


def _field_path(loc: tuple[int | str, ...]) -> str:
    return ".".join(str(part) for part in loc) or "<file>"


def load_serve_config(
    path: Path | None = None, overrides: ServeOverrides | None = None
) -> ServeConfig:
    """Build the gateway settings from an optional YAML file and CLI overrides.

    Args:
        path: ``serve.yaml``; None uses the defaults.
        overrides: the CLI flags; unset ones never hide the file's value.

    Returns:
        The validated settings.

    Raises:
        BadInputError: the file is missing, is not a YAML mapping, or has bad or unknown
            fields (all of them listed, each with the file and field).
    """
    source = str(path) if path is not None else "command line"
    raw: dict[str, Any] = {}
    if path is not None:
        try:
            loaded = yaml.safe_load(path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise BadInputError(f"{path}: cannot read serve config ({exc.strerror})") from exc
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            where = f":{mark.line + 1}" if mark is not None else ""
            raise BadInputError(f"{path}{where}: not valid YAML") from exc
        if loaded is None:
            loaded = {}
        if not isinstance(loaded, dict):
            raise BadInputError(f"{path}: the serve config must be a mapping of settings")
        raw.update(loaded)
    given = overrides.model_dump(exclude_defaults=True) if overrides is not None else {}
    for key, value in given.items():
        if key in ("backend_options", "adapters"):
            raw[key] = {**raw.get(key, {}), **value}
        else:
            raw[key] = value
    try:
        return ServeConfig.model_validate(raw)
    except ValidationError as exc:
        problems = "; ".join(
            f"{_field_path(err['loc'])}: {err['msg']}" for err in exc.errors(include_input=False)
        )
        raise BadInputError(f"{source}: invalid serve config: {problems}") from None
