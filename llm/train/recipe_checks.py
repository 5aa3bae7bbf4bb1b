"""Cross-field rules of a recipe, each message saying what to change, and how
problems are reported.

Every rule names the recipe sections it reads. :func:`run_checks` runs the
rules whose sections all validated, so one bad field elsewhere does not hide
the other problems: the user gets every error in one message (like
torchtune's ``ConfigError``).
"""

from __future__ import annotations

import difflib
import importlib.metadata
import importlib.util
import inspect
import re
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, get_args

import yaml
from pydantic import BaseModel
from pydantic_core import ErrorDetails

from llm.errors import BadInputError
from llm.train.distributed import (
    MULTI_PROCESS_TYPES,
    AccelerateLaunch,
    read_accelerate_config,
    read_json_config,
    zero_stage,
)


@dataclass(frozen=True)
class Problem:
    """One thing wrong with a recipe: the dotted field path and what to change."""

    path: str
    message: str


Check = Callable[..., Iterator[Problem]]
_CHECKS: list[tuple[tuple[str, ...], Check]] = []


def _check(fn: Check) -> Check:
    """Register a rule; its parameter names are the recipe sections it reads."""
    _CHECKS.append((tuple(inspect.signature(fn).parameters), fn))
    return fn


def run_checks(sections: dict[str, Any]) -> list[Problem]:
    """Run every rule whose sections are all present in ``sections``.

    Args:
        sections: recipe field name -> validated value (sections that failed
            validation are left out).

    Returns:
        The problems found, in rule order.
    """
    problems: list[Problem] = []
    for needs, fn in _CHECKS:
        if all(name in sections for name in needs):
            problems.extend(fn(**{name: sections[name] for name in needs}))
    return problems


# ---------------------------------------------------------------- reporting


class RecipeError(BadInputError):
    """Every problem of one recipe, each located by file line or ``--set`` override.

    Args:
        source: the recipe file.
        problems: what is wrong, one entry per field.
        locations: where each problem comes from (``recipes/x.yaml:12`` or ``--set a.b=1``),
            aligned with ``problems``.
    """

    def __init__(self, source: str, problems: list[Problem], locations: list[str]) -> None:
        self.source = source
        self.problems = problems
        self.locations = locations
        count = f"{len(problems)} problem{'s' if len(problems) != 1 else ''}"
        lines = [f"{count} in recipe {source}:"]
        lines += [
            f"  {where}: {p.path}: {p.message}"
            for where, p in zip(locations, problems, strict=True)
        ]
        super().__init__("\n".join(lines))


_PATH_PART = re.compile(r"\[(\d+)\]|([^.\[\]]+)")


def _path_parts(path: str) -> tuple[str | int, ...]:
    return tuple(int(i) if i else name for i, name in _PATH_PART.findall(path))


def _dotted(parts: Sequence[str | int]) -> str:
    out = ""
    for part in parts:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else part)
    return out


def _section_model(annotation: Any) -> type[BaseModel] | None:
    """The pydantic model inside ``X``, ``X | None`` or ``list[X]``, if any."""
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _section_model(arg)
        if found is not None:
            return found
    return None


def problem_from_pydantic(error: ErrorDetails, root: type[BaseModel]) -> Problem:
    """Turn one pydantic error into a Problem with a clean path and a helpful message.

    Args:
        error: one entry of ``ValidationError.errors()``.
        root: the model that was validated (its fields give "did you mean" hints).
    """
    model: type[BaseModel] | None = root
    parts: list[str | int] = []
    field_info = None
    for part in error["loc"]:
        if isinstance(part, int):
            parts.append(part)
        elif model is not None and part in model.model_fields:
            parts.append(part)
            field_info = model.model_fields[part]
            model = _section_model(field_info.annotation)
        elif error["type"] == "extra_forbidden" and model is not None:
            close = difflib.get_close_matches(part, list(model.model_fields), n=2, cutoff=0.6)
            hint = f"; did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
            known = ", ".join(model.model_fields)
            return Problem(_dotted([*parts, part]), f"unknown key{hint} (known: {known})")
        # else: a union-member tag such as "list[...]": not part of the user's path
    message = error["msg"]
    if error["type"] == "missing" and field_info is not None and field_info.description:
        message = f"required: {field_info.description}"
    elif error["type"] == "value_error":
        message = message.removeprefix("Value error, ")
    return Problem(_dotted(parts), message)


def merge_same_path(problems: list[Problem]) -> list[Problem]:
    """One entry per path (union types report once per member), messages joined."""
    merged: dict[str, list[str]] = {}
    for p in problems:
        messages = merged.setdefault(p.path, [])
        if p.message not in messages:
            messages.append(p.message)
    return [Problem(path, "; or ".join(msgs)) for path, msgs in merged.items()]


def yaml_key_lines(text: str) -> dict[tuple[str | int, ...], int]:
    """1-based line of every key (and list item) in a YAML document, by path."""
    lines: dict[tuple[str | int, ...], int] = {}

    def walk(node: yaml.Node, prefix: tuple[str | int, ...]) -> None:
        if isinstance(node, yaml.MappingNode):
            for key_node, value_node in node.value:
                key = (*prefix, str(key_node.value))
                lines[key] = key_node.start_mark.line + 1
                walk(value_node, key)
        elif isinstance(node, yaml.SequenceNode):
            for index, item in enumerate(node.value):
                key = (*prefix, index)
                lines[key] = item.start_mark.line + 1
                walk(item, key)

    root = yaml.compose(text)
    if root is not None:
        walk(root, ())
    return lines


def locate(
    path: str,
    source: str,
    key_lines: dict[tuple[str | int, ...], int],
    overrides: dict[tuple[str, ...], str],
) -> str:
    """Where a problem comes from: the ``--set`` that touched it, or its line in the file.

    Args:
        path: the problem's dotted field path.
        source: the recipe file.
        key_lines: line of each key path (:func:`yaml_key_lines`).
        overrides: ``--set`` key paths with their raw text.
    """
    parts = _path_parts(path)
    for keys, raw in reversed(overrides.items()):
        n = min(len(keys), len(parts))
        if n and tuple(parts[:n]) == keys[:n]:
            return f"--set {raw}"
    for n in range(len(parts), 0, -1):
        if parts[:n] in key_lines:
            return f"{source}:{key_lines[parts[:n]]}"
    return source


# ---------------------------------------------------------------- rules


def _launch_or_none(launch: Any) -> AccelerateLaunch | None:
    path = launch.accelerate_config
    if path is None or not path.is_file():
        return None
    try:
        return read_accelerate_config(path)
    except BadInputError:
        return None


def _deepspeed_or_none(deepspeed: Any) -> dict[str, Any] | None:
    if deepspeed is None or not deepspeed.is_file():
        return None
    try:
        return read_json_config(deepspeed)
    except BadInputError:
        return None


@_check
def _model_source(model: Any) -> Iterator[Problem]:
    if model.base is None and model.config is None:
        yield Problem(
            "model",
            "set model.base (a local checkpoint folder) or model.config (an architecture "
            "config.json, enough for --dry-run)",
        )
    if model.config is not None and not model.config.is_file():
        yield Problem("model.config", f"file not found: {model.config}")
    if model.attn_implementation == "flash_attention_2" and model.dtype == "fp32":
        yield Problem(
            "model.attn_implementation",
            "flash_attention_2 needs model.dtype bf16 or fp16; use sdpa for fp32",
        )


@_check
def _tasks_fit_model(data: Any, model: Any) -> Iterator[Problem]:
    from llm.data.tasks import TASKS

    for name in data.tasks:
        if getattr(TASKS.get(name), "multimodal", False) and not model.multimodal:
            yield Problem(
                "data.tasks",
                f"task {name!r} reads images: set model.multimodal: true with a "
                "vision-language model, or drop the task",
            )
    if model.attn_implementation == "sdpa_varlen" and not data.packing:
        yield Problem(
            "model.attn_implementation",
            "sdpa_varlen runs packed batches only: set data.packing: true, or use sdpa",
        )
    if data.packing and model.multimodal:
        yield Problem(
            "data.packing",
            "packing is not supported for multimodal models (the padding-free collator "
            "cannot carry images); set data.packing: false",
        )


@_check
def _method_settings(method: Any) -> Iterator[Problem]:
    if method.kind in {"lora", "qlora"} and method.lora is None:
        from llm.models.loading import QLORA_INSTALL

        note = (
            f" QLoRA also needs bitsandbytes for its 4-bit base weights: {QLORA_INSTALL}."
            if method.kind == "qlora"
            else ""
        )
        yield Problem(
            "method.lora",
            f"kind {method.kind!r} needs adapter settings: add method.lora with r, alpha, "
            f"dropout and target_modules (e.g. r: 16, alpha: 32, target_modules: [q_proj, "
            f"k_proj, v_proj, o_proj]).{note}",
        )
    if method.kind == "full" and method.lora is not None:
        yield Problem(
            "method.lora",
            "kind 'full' trains every weight: remove method.lora or set method.kind: lora",
        )
    if method.lora is not None and not method.lora.target_modules:
        yield Problem(
            "method.lora.target_modules",
            "list at least one module to adapt, e.g. [q_proj, k_proj, v_proj, o_proj]",
        )
    if method.quantization is not None and method.kind != "qlora":
        yield Problem(
            "method.quantization",
            f"4-bit settings only apply to kind 'qlora' (kind is {method.kind!r}); remove them",
        )


@_check
def _deepspeed_file(deepspeed: Any) -> Iterator[Problem]:
    if deepspeed is None:
        return
    if not deepspeed.is_file():
        yield Problem("deepspeed", f"file not found: {deepspeed}")
        return
    try:
        config = read_json_config(deepspeed)
    except BadInputError as exc:
        yield Problem("deepspeed", str(exc))
        return
    if "optimizer" in config:
        yield Problem(
            "deepspeed",
            f"{deepspeed.name} has an 'optimizer' block: remove it. The trainer uses torch "
            "AdamW (training.learning_rate, weight_decay); DeepSpeed's optimizers need their "
            "fused/CPU Adam compiled",
        )
    if zero_stage(config) not in {0, 1, 2, 3}:
        yield Problem("deepspeed", f"zero_optimization.stage must be 0-3 in {deepspeed.name}")


@_check
def _qlora_deepspeed(method: Any, deepspeed: Any) -> Iterator[Problem]:
    config = _deepspeed_or_none(deepspeed)
    if method.kind == "qlora" and config is not None and zero_stage(config) == 3:
        yield Problem(
            "method.kind",
            "qlora with ZeRO-3 is not supported (4-bit base weights are not partitioned); "
            "use deepspeed: recipes/deepspeed/zero2.json, or no DeepSpeed",
        )


@_check
def _schedule(training: Any) -> Iterator[Problem]:
    if training.max_steps is not None and training.num_epochs is not None:
        yield Problem(
            "training.max_steps",
            "max_steps and num_epochs are both set: keep exactly one of them",
        )
    if training.max_steps is None and training.num_epochs is None:
        yield Problem("training.max_steps", "set training.max_steps or training.num_epochs")


@_check
def _early_stopping(training: Any, data: Any) -> Iterator[Problem]:
    evaluates = training.eval_every_steps is not None or training.early_stopping_patience
    if evaluates and data.eval_split is None:
        yield Problem(
            "data.eval_split",
            "training evaluates during the run (eval_every_steps/early_stopping_patience) but "
            "data.eval_split is null: set it to validation",
        )
    if training.early_stopping_patience is None:
        return
    every_eval, every_save = training.eval_every_steps, training.save_every_steps
    if every_eval is None:
        yield Problem(
            "training.eval_every_steps",
            "early_stopping_patience needs eval_every_steps (how often to evaluate)",
        )
    if every_save is None:
        yield Problem(
            "training.save_every_steps",
            "early stopping ends on the best checkpoint, so it needs save_every_steps "
            "(a multiple of eval_every_steps)",
        )
    if every_eval and every_save and every_save % every_eval:
        yield Problem(
            "training.save_every_steps",
            f"with early stopping, save_every_steps ({every_save}) must be a multiple of "
            f"eval_every_steps ({every_eval}) so every saved checkpoint has an eval loss; "
            f"e.g. save_every_steps: {every_eval * max(1, every_save // every_eval)}",
        )


@_check
def _launch_matches(launch: Any, deepspeed: Any) -> Iterator[Problem]:
    path = launch.accelerate_config
    if path is None:
        return
    if not path.is_file():
        yield Problem("launch.accelerate_config", f"file not found: {path}")
        return
    try:
        acc = read_accelerate_config(path)
    except BadInputError as exc:
        yield Problem("launch.accelerate_config", str(exc))
        return
    if acc.num_processes > 1 and acc.distributed_type not in MULTI_PROCESS_TYPES:
        yield Problem(
            "launch.accelerate_config",
            f"{path.name} asks for {acc.num_processes} processes with distributed_type "
            f"{acc.distributed_type}: accelerate would start ONE. Set distributed_type: "
            "DEEPSPEED (or MULTI_GPU)",
        )
    if acc.distributed_type == "DEEPSPEED":
        if deepspeed is None:
            yield Problem(
                "deepspeed",
                f"{path.name} launches DeepSpeed with {acc.deepspeed_config_file}: set "
                "deepspeed to that file",
            )
        elif (
            acc.deepspeed_config_file and acc.deepspeed_config_file.resolve() != deepspeed.resolve()
        ):
            yield Problem(
                "deepspeed",
                f"the recipe uses {deepspeed} but {path.name} launches DeepSpeed with "
                f"{acc.deepspeed_config_file}: make them the same file",
            )
    elif deepspeed is not None:
        yield Problem(
            "launch.accelerate_config",
            f"the recipe sets deepspeed but {path.name} has distributed_type "
            f"{acc.distributed_type}: use a DeepSpeed accelerate config "
            "(recipes/accelerate/*-zero*.yaml)",
        )


# bitsandbytes quantises on CPU since 0.49 (its CPU backend: nf4 and int8 kernels)
BITSANDBYTES_CPU_VERSION = (0, 49)


def _cpu_bitsandbytes_problem() -> str | None:
    """Why qlora cannot train on this CPU, judged without importing bitsandbytes.

    A recipe check must stay cheap (``--dry-run`` runs it), so it reads the
    installed version only; loading the model runs the real probe
    (:func:`llm.models.loading.quantization_config` quantises a small matrix).
    """
    from llm.models.loading import QLORA_INSTALL

    if importlib.util.find_spec("bitsandbytes") is None:
        return f"qlora needs bitsandbytes, which is not installed: {QLORA_INSTALL}"
    installed = importlib.metadata.version("bitsandbytes")
    numbers = tuple(int(part) for part in re.findall(r"\d+", installed)[:2])
    if numbers < BITSANDBYTES_CPU_VERSION:
        wanted = ".".join(map(str, BITSANDBYTES_CPU_VERSION))
        return (
            f"qlora on CPU needs bitsandbytes {wanted} or later (its CPU backend), "
            f"{installed} is installed: {QLORA_INSTALL}"
        )
    return None


@_check
def _cpu_limits(launch: Any, model: Any, method: Any) -> Iterator[Problem]:
    acc = _launch_or_none(launch)
    if acc is None or not acc.use_cpu:
        return
    where = f"{acc.path.name} runs on CPU (use_cpu: true)"
    if method.kind == "qlora":
        problem = _cpu_bitsandbytes_problem()
        if problem is not None:
            yield Problem("method.kind", f"{problem}; {where}")
    if model.dtype == "fp16":
        yield Problem("model.dtype", f"fp16 needs a GPU; {where}: use bf16 or fp32")
    if model.attn_implementation == "flash_attention_2":
        yield Problem(
            "model.attn_implementation", f"flash_attention_2 needs a CUDA GPU; {where}: use sdpa"
        )


@_check
def _tracking(tracking: Any) -> Iterator[Problem]:
    if isinstance(tracking.backend, list):
        chosen = tracking.backend
        if not chosen:
            yield Problem("tracking.backend", "empty list: use none to turn tracking off")
        if "none" in chosen and len(chosen) > 1:
            yield Problem("tracking.backend", "none cannot be combined with other backends")
        if len(set(chosen)) != len(chosen):
            yield Problem("tracking.backend", "a backend is listed twice")
