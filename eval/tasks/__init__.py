"""Evaluation tasks: versioned YAML files in this folder, found by name.

``eval/tasks/<name>.yaml`` is task ``<name>`` (the file's ``task`` field must
agree). :data:`TASKS` is the project's small registry (lazy, "did you mean"
for unknown names); :func:`load_task` also accepts a path to a task file kept
elsewhere, whose ``!function`` references still resolve only inside this
package.
"""

from __future__ import annotations

from pathlib import Path

from eval.tasks.spec import TaskSpec, load_task_file
from llm.errors import BadInputError
from llm.registry import Registry

TASK_DIR = Path(__file__).resolve().parent

TASKS: Registry[Path] = Registry("task", {p.stem: p for p in sorted(TASK_DIR.glob("*.yaml"))})


def task_names() -> list[str]:
    """Names of the shipped tasks, sorted."""
    return TASKS.names()


def load_task(name_or_path: str | Path) -> TaskSpec:
    """A task by registry name (``diagnosis``) or by path to a task file.

    Raises:
        BadInputError: unknown name (with "did you mean"), or an invalid file; a
            shipped file whose ``task`` field differs from its name.
    """
    text = str(name_or_path)
    if text.endswith((".yaml", ".yml")) or "/" in text:
        return load_task_file(Path(text))
    path = TASKS.get(text)
    spec = load_task_file(path)
    if spec.task != text:
        raise BadInputError(f"{path}: task: {spec.task!r} differs from the file name {text!r}")
    return spec


__all__ = ["TASKS", "TaskSpec", "load_task", "task_names"]
