"""The task file schema: one versioned YAML file per evaluation task.

Shaped like an lm-eval-harness task file, adapted to chat datasets::

    # clinical-llm eval run eval/suites/clinical-core.yaml --model models/tiny-clinical --out r
    task: readmission
    version: 1
    dataset: {task: readmission, split: test}   # DIR/<task>/<split>; DIR from the suite
    generation: {max_tokens: 4, temperature: 0.0, stop: ["\\n"]}
    parse: choice                                # text | first_line | choice
    metrics: [accuracy, true_positive_rate, false_positive_rate, f1]
    positive_label: "yes"

The prompt is the dataset row's messages minus the final assistant turn, in the
model's own chat template, unless ``doc_to_text: !function hooks.fn`` renders
it. Every field is checked when the file is loaded; all problems are reported
at once, each naming the file, the line and the field.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from eval.registry import METRICS
from eval.tasks.yaml_loader import FunctionRef, key_line, load_yaml
from llm.errors import BadInputError

Mode = Literal["generate", "loglikelihood_choice"]
Parse = Literal["text", "first_line", "choice"]
Images = Literal["none", "optional", "required"]


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", arbitrary_types_allowed=True, frozen=True)


class DatasetRef(_Strict):
    """Where a task's examples are: ``<dataset_dir>/<task>/<split>``."""

    task: str | None = Field(
        default=None, description="Folder of the task under dataset_dir (default: the task name)."
    )
    split: str = Field(default="test", description="Split to evaluate (train, validation, test).")
    dataset_dir: Path | None = Field(
        default=None,
        description="Output folder of `clinical-llm data build` (default: the suite's "
        "dataset_dir).",
    )


class GenerationSettings(_Strict):
    """Decoding settings; temperature 0 is greedy decoding (reproducible)."""

    max_tokens: int = Field(default=32, ge=1, description="Most tokens generated per example.")
    temperature: float = Field(default=0.0, ge=0.0, description="0: greedy decoding.")
    stop: list[str] = Field(
        default_factory=list,
        description="Generation is cut at the first of these strings (the end-of-turn token "
        "always stops it).",
    )


class TaskSpec(_Strict):
    """One evaluation task (a YAML file under ``eval/tasks/``)."""

    task: str = Field(description="Task name; the registry key (and the file's stem).")
    version: int = Field(ge=1, description="Bumped whenever a change can change the numbers.")
    description: str = Field(default="", description="What is evaluated, in a sentence.")
    dataset: DatasetRef = Field(default_factory=DatasetRef, description="Where the examples are.")
    images: Images = Field(
        default="none",
        description="none: text task. optional: the prompt holds images; text-only runners "
        "drop them (text_fallback). required: text-only runners skip the task.",
    )
    doc_to_text: FunctionRef | None = Field(
        default=None,
        description="!function hooks.fn: renders a row into a prompt (a string becomes the "
        "user turn; a list is the messages). Default: the row's messages minus the answer.",
    )
    text_fallback: FunctionRef | None = Field(
        default=None,
        description="!function hooks.fn: turns multimodal messages into text-only ones "
        "(default: hooks.without_images).",
    )
    system: str | None = Field(
        default=None, description="System prompt put before a doc_to_text string."
    )
    mode: Mode = Field(
        default="generate",
        description="generate: decode, then parse. loglikelihood_choice: score every allowed "
        "answer and pick the most likely (needs a runner with loglikelihood).",
    )
    generation: GenerationSettings = Field(
        default_factory=GenerationSettings, description="Decoding settings."
    )
    parse: Parse = Field(
        default="text",
        description="text: the stripped generation. first_line: its first non-empty line. "
        "choice: the closest allowed answer (case-insensitive), else 'invalid'.",
    )
    choices: list[str] | None = Field(
        default=None,
        description="Allowed answers of a classification task (default: the dataset "
        "manifest's answers for the task).",
    )
    metrics: list[str] = Field(min_length=1, description="Metric names (eval/registry.py).")
    positive_label: str | None = Field(
        default=None, description="Positive class of a binary task (binary metrics, AUROC)."
    )
    attributes: list[str] | None = Field(
        default=None, description="Subgroup attributes (default: the suite's)."
    )

    @field_validator("doc_to_text", "text_fallback", mode="before")
    @classmethod
    def _tagged(cls, value: Any) -> Any:
        if isinstance(value, str):
            raise ValueError(f"write `!function {value}` (a function in eval/tasks/)")
        return value

    @field_validator("metrics")
    @classmethod
    def _known_metrics(cls, value: list[str]) -> list[str]:
        for name in value:
            try:
                METRICS.check(name)
            except BadInputError as exc:
                raise ValueError(str(exc)) from None
        if len(set(value)) != len(value):
            raise ValueError("a metric is listed twice")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TaskSpec:
        metrics = [METRICS.get(name)() for name in self.metrics]
        needs_label = [m.name for m in metrics if m.needs_positive_label]
        if needs_label and self.positive_label is None:
            raise ValueError(f"metrics {', '.join(needs_label)} need positive_label")
        needs_scores = [m.name for m in metrics if m.needs_scores]
        if needs_scores and self.mode != "loglikelihood_choice":
            raise ValueError(
                f"metrics {', '.join(needs_scores)} need a score per example: "
                "use mode: loglikelihood_choice"
            )
        if self.mode == "loglikelihood_choice" and self.parse != "choice":
            raise ValueError("mode loglikelihood_choice picks an allowed answer: set parse: choice")
        if self.choices is not None and len(set(self.choices)) < 2:
            raise ValueError("choices: give at least two distinct answers")
        if self.positive_label is not None and self.parse != "choice":
            raise ValueError("positive_label is for classification tasks (parse: choice)")
        return self

    @property
    def dataset_task(self) -> str:
        """The task folder under the dataset directory."""
        return self.dataset.task or self.task

    @property
    def is_classification(self) -> bool:
        """Whether predictions are labels from a fixed set of answers."""
        return self.parse == "choice"


def _line_of(root: Any, loc: tuple[Any, ...]) -> int:
    line = key_line(root, str(loc[0])) if loc else None
    return line or 1


def parse_task(data: Any, root: Any, path: Path) -> TaskSpec:
    """Validate a task file's data.

    Raises:
        BadInputError: not a mapping, or invalid fields (all of them, one per line
            of the message, each as ``file:line: field: problem``).
    """
    if not isinstance(data, dict):
        raise BadInputError(
            f"{path}: expected a YAML mapping (one task), got {type(data).__name__}"
        )
    try:
        return TaskSpec.model_validate(data)
    except ValidationError as exc:
        problems = [
            f"{path}:{_line_of(root, tuple(e['loc']))}: "
            f"{'.'.join(str(p) for p in e['loc']) or '<task>'}: "
            f"{e['msg'].removeprefix('Value error, ')}"
            for e in exc.errors()
        ]
        raise BadInputError("invalid task file:\n" + "\n".join(problems)) from None


def load_task_file(path: Path) -> TaskSpec:
    """Read and validate one task file.

    Raises:
        BadInputError: missing file, bad YAML, bad ``!function`` or invalid fields.
    """
    data, root = load_yaml(path)
    return parse_task(data, root, path)
