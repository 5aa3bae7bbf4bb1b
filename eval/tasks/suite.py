"""Suite files: which tasks to run on a model, and the settings they share.

::

    # clinical-llm eval run eval/suites/clinical-core.yaml --model models/tiny-clinical --out r
    suite: clinical-core
    dataset_dir: ../../datasets          # relative to this file
    tasks: [diagnosis, readmission, {task: summary, limit: 50}]
    attributes: [sex, age_band, race_ethnicity, payer]
    gates: gates/clinical-core.yaml      # relative to this file
    bootstrap: 1000
    min_group_size: 30

Override order (lowest first): task file < suite file < ``--set key=value``
< explicit CLI flags (``--limit``). Paths written in a suite file are relative
to the suite file's folder; paths given with ``--set`` are relative to the
working directory, like any command-line path.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from eval.gates import GateSpec, load_gates
from eval.report.model import EQUALIZED_ODDS
from eval.tasks.yaml_loader import key_line, load_yaml
from llm.errors import BadInputError
from llm.overrides import apply_overrides

PATH_KEYS = ("dataset_dir", "gates")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SuiteTask(_Strict):
    """One task of a suite, with settings that replace the suite's for it."""

    task: str = Field(description="Task name (eval/tasks/<name>.yaml) or path to a task file.")
    split: str | None = Field(default=None, description="Split (default: the task's).")
    dataset_dir: Path | None = Field(default=None, description="Dataset folder for this task.")
    limit: int | None = Field(default=None, ge=1, description="Evaluate the first N examples.")
    gates: Path | None = Field(default=None, description="Gates file for this task only.")
    attributes: list[str] | None = Field(default=None, description="Subgroup attributes.")


class Suite(_Strict):
    """A suite file: tasks plus the settings they share."""

    suite: str = Field(description="Suite name (shown in summary.json and the manifest).")
    description: str = Field(default="", description="What the suite checks.")
    dataset_dir: Path | None = Field(
        default=None, description="Output folder of `clinical-llm data build`."
    )
    split: str | None = Field(
        default=None, description="Split for every task (default: each task's)."
    )
    tasks: list[SuiteTask] = Field(min_length=1, description="Tasks to run, in order.")
    attributes: list[str] = Field(
        min_length=1, description="Subgroup attributes; 'a*b' is an intersection."
    )
    gates: Path | None = Field(
        default=None,
        description="Gates file; each gate applies to every task that computes its metric.",
    )
    bootstrap: int = Field(default=1000, ge=0, description="Bootstrap resamples (0: none).")
    min_group_size: int = Field(default=30, ge=0, description="Smaller groups are marked small.")
    confidence: float = Field(default=0.95, gt=0.0, lt=1.0, description="Interval coverage.")
    seed: int = Field(default=0, description="Seed of resampling and sampled decoding.")
    limit: int | None = Field(default=None, ge=1, description="First N examples of every task.")

    @field_validator("tasks", mode="before")
    @classmethod
    def _names_to_entries(cls, value: Any) -> Any:
        if isinstance(value, list):
            return [{"task": v} if isinstance(v, str) else v for v in value]
        return value

    @field_validator("tasks")
    @classmethod
    def _distinct(cls, value: list[SuiteTask]) -> list[SuiteTask]:
        names = [t.task for t in value]
        repeated = sorted({n for n in names if names.count(n) > 1})
        if repeated:
            raise ValueError(f"task(s) listed twice: {', '.join(repeated)}")
        return value


def _resolve_paths(data: dict[str, Any], base: Path) -> dict[str, Any]:
    """Suite-file paths made relative to the suite file's folder."""
    out = dict(data)
    for key in PATH_KEYS:
        if isinstance(out.get(key), str):
            out[key] = str(base / out[key])
    if isinstance(out.get("tasks"), list):
        entries = []
        for entry in out["tasks"]:
            if isinstance(entry, dict):
                entry = dict(entry)
                for key in PATH_KEYS:
                    if isinstance(entry.get(key), str):
                        entry[key] = str(base / entry[key])
                task = entry.get("task")
                if isinstance(task, str) and task.endswith((".yaml", ".yml")):
                    entry["task"] = str(base / task)
            entries.append(entry)
        out["tasks"] = entries
    return out


def load_suite(path: Path, overrides: list[str] | tuple[str, ...] = ()) -> Suite:
    """Read a suite file and apply ``--set`` overrides.

    Args:
        path: the suite YAML.
        overrides: ``key=value`` strings (``dataset_dir=build/demo/datasets``,
            ``bootstrap=0``); values parse as YAML scalars or flow lists.

    Returns:
        The validated suite.

    Raises:
        BadInputError: missing file, bad YAML, bad override, or invalid fields
            (all of them, each with the file's line or the ``--set`` that caused it).
    """
    data, root = load_yaml(path)
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: expected a YAML mapping (a suite), got {type(data).__name__}")
    merged, touched = apply_overrides(_resolve_paths(data, path.parent), overrides)
    try:
        return Suite.model_validate(merged)
    except ValidationError as exc:
        problems = []
        for error in exc.errors():
            loc = tuple(error["loc"])
            field = ".".join(str(p) for p in loc) or "<suite>"
            cause = next((raw for keys, raw in touched.items() if keys[0] == loc[0]), None)
            where = f"--set {cause}" if cause else f"{path}:{key_line(root, str(loc[0])) or 1}"
            problems.append(f"{where}: {field}: {error['msg'].removeprefix('Value error, ')}")
        raise BadInputError("invalid suite:\n" + "\n".join(problems)) from None


def gates_for_task(gates: list[GateSpec], metrics: list[str], binary: bool) -> list[GateSpec]:
    """The gates of a suite-wide file that apply to a task: those on a metric it computes."""
    return [g for g in gates if g.metric in metrics or (g.metric == EQUALIZED_ODDS and binary)]


def read_suite_gates(path: Path | None) -> list[GateSpec]:
    """The gates of a suite or task entry (none when no file is named).

    Raises:
        BadInputError: unreadable file; RecordError: an invalid entry.
    """
    return [] if path is None else load_gates(path)


def write_gates(gates: list[GateSpec], path: Path) -> Path:
    """Write gates as a gates file (the ones applied to one task, kept beside its report)."""
    rows = [g.model_dump(mode="json", exclude_none=True) for g in gates]
    path.write_text(yaml.safe_dump(rows, sort_keys=False), encoding="utf-8")
    return path
