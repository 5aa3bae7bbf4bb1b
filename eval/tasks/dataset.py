"""Examples of a task: dataset rows of ``clinical-llm data build`` turned into prompts.

A task's examples are ``<dataset_dir>/<task>/<split>.jsonl`` (the JSON-lines
copy that ``data build`` writes beside the ``save_to_disk`` dataset: same rows,
and errors can name a line). Each row gives an id, the conversation, the
reference answer and the patient's demographics. The prompt is the
conversation minus its final assistant turn (or the task's ``doc_to_text``
hook); for a runner without image input, a task with ``images: optional``
gets its ``text_fallback``.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.runners.base import Prompt
from eval.tasks.hooks import content_text, has_images, prompt_messages, without_images
from eval.tasks.parse import INVALID
from eval.tasks.spec import TaskSpec
from llm.data.io import ReadStats
from llm.errors import BadInputError, RecordError
from llm.files import parse_json_line

DATASET_MANIFEST = "manifest.json"


@dataclass(frozen=True)
class Example:
    """One row ready for a runner.

    Attributes:
        id: the row id.
        prompt: chat messages with string content.
        reference: the reference answer.
        demographics: group of each attribute.
        line: 1-based line of the row in its file.
    """

    id: str
    prompt: Prompt
    reference: str
    demographics: dict[str, Any]
    line: int


def split_file(dataset_dir: Path, task: TaskSpec, split: str) -> Path:
    """``<dataset_dir>/<task folder>/<split>.jsonl``, checked to exist.

    Raises:
        BadInputError: the folder or the split file is missing (the message lists
            the splits and tasks that are there).
    """
    folder = dataset_dir / task.dataset_task
    if not dataset_dir.is_dir():
        raise BadInputError(
            f"dataset_dir {dataset_dir}: not found; build it with `clinical-llm data build` "
            "or point the suite at it (--set dataset_dir=PATH)"
        )
    if not folder.is_dir():
        present = sorted(p.name for p in dataset_dir.iterdir() if p.is_dir() and p.name != "assets")
        raise BadInputError(
            f"{folder}: task {task.dataset_task!r} was not built into {dataset_dir} "
            f"(present: {', '.join(present) or 'none'})"
        )
    path = folder / f"{split}.jsonl"
    if not path.is_file():
        present = sorted(p.stem for p in folder.glob("*.jsonl"))
        raise BadInputError(f"{path}: no split {split!r} (present: {', '.join(present) or 'none'})")
    return path


def allowed_answers(dataset_dir: Path, task: TaskSpec) -> list[str] | None:
    """The answer space of a classification task: the task's ``choices``, else the manifest's.

    Returns:
        The answers, or None for free-text tasks.

    Raises:
        BadInputError: a classification task with no ``choices`` whose dataset
            manifest does not list its answers, or answers that include ``invalid``.
    """
    if not task.is_classification:
        return None
    answers = task.choices
    if answers is None:
        manifest = dataset_dir / DATASET_MANIFEST
        try:
            data = json.loads(manifest.read_text(encoding="utf-8"))
            answers = data["tasks"][task.dataset_task]["answers"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError):
            answers = None
        if not isinstance(answers, list) or len(answers) < 2:
            raise BadInputError(
                f"{manifest}: tasks.{task.dataset_task}.answers: missing; task {task.task!r} "
                "needs its allowed answers (or set choices: in the task file)"
            )
    if INVALID in answers:
        raise BadInputError(
            f"task {task.task!r}: {INVALID!r} is an allowed answer, but it names the bucket "
            "of unparseable generations; rename the label"
        )
    if task.positive_label is not None and task.positive_label not in answers:
        raise BadInputError(
            f"task {task.task!r}: positive_label {task.positive_label!r} is not an allowed "
            f"answer ({', '.join(answers)})"
        )
    return [str(a) for a in answers]


def _text_prompt(messages: list[dict[str, Any]]) -> Prompt:
    return [{"role": m["role"], "content": content_text(m.get("content"))} for m in messages]


def build_prompt(task: TaskSpec, row: Mapping[str, Any], *, images: bool) -> Prompt:
    """The prompt of one row for a runner with (``images``) or without image input.

    Raises:
        BadInputError: the hook returned something other than text or messages,
            or a task declared ``images: none`` holds image parts.
    """
    if task.doc_to_text is not None:
        rendered = task.doc_to_text(row)
        if isinstance(rendered, str):
            system = [{"role": "system", "content": task.system}] if task.system else []
            return [*system, {"role": "user", "content": rendered}]
        if not isinstance(rendered, list) or not all(isinstance(m, dict) for m in rendered):
            raise BadInputError(
                f"{task.doc_to_text.name}: returned {type(rendered).__name__}; expected a "
                "string or a list of messages"
            )
        messages = [dict(m) for m in rendered]
    else:
        messages = prompt_messages(row)
    if has_images(messages):
        if task.images == "none":
            raise BadInputError(
                f"task {task.task!r} has images: none, but its rows hold image parts; "
                "set images: optional or required"
            )
        if not images:
            fallback = task.text_fallback.function if task.text_fallback else without_images
            messages = fallback(messages)
    return _text_prompt(messages) if not images else messages


def _field(
    row: dict[str, Any], key: str, kinds: type | tuple[type, ...], path: Path, line: int
) -> Any:
    value = row.get(key)
    if not isinstance(value, kinds) or (
        isinstance(value, str) and not value.strip() and key == "id"
    ):
        got = "missing" if key not in row else f"got {type(value).__name__}"
        raise RecordError(str(path), line, key, f"expected {_kind_name(kinds)}, {got}")
    return value


def _kind_name(kinds: type | tuple[type, ...]) -> str:
    names = {str: "a string", dict: "an object", list: "a list", int: "an integer"}
    kinds = kinds if isinstance(kinds, tuple) else (kinds,)
    return " or ".join(names.get(k, k.__name__) for k in kinds)


def read_examples(
    path: Path,
    task: TaskSpec,
    *,
    images: bool,
    choices: list[str] | None,
    limit: int | None,
    stats: ReadStats,
    progress: Callable[[Iterable[Any]], Iterable[Any]] | None = None,
) -> list[Example]:
    """Read a split file into examples (the first ``limit`` rows when given).

    Args:
        path: the split's JSONL file.
        task: the task.
        images: whether the runner takes image input.
        choices: the allowed answers of a classification task (references must be one).
        limit: stop after this many rows.
        stats: filled with ``read = used + rejected`` (a bad row stops the run,
            so rejected stays 0 when this returns).
        progress: wraps the line loop.

    Returns:
        The examples, in file order.

    Raises:
        RecordError: a row that is not JSON, lacks a field, has a conversation that
            does not end with the answer, or a reference outside ``choices``.
        BadInputError: the split holds no rows.
    """
    examples: list[Example] = []
    seen: dict[str, int] = {}
    with path.open(encoding="utf-8") as fh:
        lines: Iterable[tuple[int, str]] = enumerate(fh, start=1)
        for line, text in progress(lines) if progress else lines:
            if limit is not None and len(examples) >= limit:
                break
            if not text.strip():
                continue
            stats.read += 1
            try:
                examples.append(_example(text, line, path, task, images, choices, seen))
            except RecordError:
                stats.rejected += 1
                raise
            stats.used += 1
    stats.check()
    if not examples:
        raise BadInputError(f"{path}: no rows to evaluate")
    return examples


def _example(
    text: str,
    line: int,
    path: Path,
    task: TaskSpec,
    images: bool,
    choices: list[str] | None,
    seen: dict[str, int],
) -> Example:
    row = parse_json_line(text, path=str(path), line=line)
    row_id = str(_field(row, "id", (str, int), path, line))
    if row_id in seen:
        raise RecordError(str(path), line, "id", f"repeats the id of line {seen[row_id]}")
    seen[row_id] = line
    _field(row, "messages", list, path, line)
    reference = _field(row, "answer", str, path, line).strip()
    demographics = _field(row, "demographics", dict, path, line)
    if choices is not None and reference not in choices:
        raise RecordError(
            str(path),
            line,
            "answer",
            f"{reference!r} is not an allowed answer ({', '.join(choices)})",
        )
    try:
        prompt = build_prompt(task, row, images=images)
    except BadInputError as exc:
        raise RecordError(str(path), line, "messages", str(exc)) from None
    return Example(row_id, prompt, reference, demographics, line)
