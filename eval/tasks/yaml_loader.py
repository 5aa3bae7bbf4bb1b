"""YAML for task and suite files: PyYAML's safe loader plus a restricted ``!function`` tag.

``text_fallback: !function hooks.without_images`` (lm-eval's convention)
names a Python function that renders a dataset row. Arbitrary references would
let a task file run any code (``!function os.system``), so the tag resolves
ONLY to plain functions defined in a module of the ``eval.tasks`` package:

* the reference is dotted identifiers, no dunder parts (``hooks.fn`` or
  ``eval.tasks.hooks.fn``); a relative reference is read inside ``eval.tasks``;
* the module part must be ``eval.tasks`` or one of its sub-modules;
* the attribute must be a function whose ``__module__`` is that module, so a
  name imported into a hooks module (``hooks.os``) is refused too.

Anything else is a :class:`~llm.errors.BadInputError` naming the file and line.
"""

from __future__ import annotations

import importlib
import inspect
import io
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llm.errors import BadInputError

PACKAGE = "eval.tasks"
FUNCTION_TAG = "!function"
_IDENTIFIER = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

ERR_FUNCTION_OUTSIDE = (
    "!function {ref!r}: only functions defined in the eval.tasks package may be referenced "
    "(e.g. !function hooks.without_images)"
)


@dataclass(frozen=True)
class FunctionRef:
    """A resolved ``!function`` reference: its dotted name and the function."""

    name: str
    function: Callable[..., Any]

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        return self.function(*args, **kwargs)


def resolve_function(ref: str) -> FunctionRef:
    """Resolve a ``!function`` reference inside the ``eval.tasks`` package.

    Args:
        ref: ``"hooks.fn"`` (relative to ``eval.tasks``) or ``"eval.tasks.hooks.fn"``.

    Returns:
        The reference with its function.

    Raises:
        BadInputError: the reference points outside ``eval.tasks``, is not a
            dotted identifier, names a missing module or attribute, or is not a
            function defined in that module.
    """
    parts = ref.strip().split(".")
    if len(parts) < 2 or not all(_IDENTIFIER.match(p) and not p.startswith("__") for p in parts):
        raise BadInputError(ERR_FUNCTION_OUTSIDE.format(ref=ref))
    qualified = parts if ".".join(parts).startswith(PACKAGE + ".") else [PACKAGE, *parts]
    module_name, attr = ".".join(qualified[:-1]), qualified[-1]
    if module_name != PACKAGE and not module_name.startswith(PACKAGE + "."):
        raise BadInputError(ERR_FUNCTION_OUTSIDE.format(ref=ref))
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError:
        raise BadInputError(f"!function {ref!r}: no module {module_name}") from None
    function = getattr(module, attr, None)
    if function is None:
        raise BadInputError(f"!function {ref!r}: {module_name} has no function {attr!r}")
    if not inspect.isfunction(function) or function.__module__ != module_name:
        raise BadInputError(ERR_FUNCTION_OUTSIDE.format(ref=ref))
    return FunctionRef(f"{module_name}.{attr}", function)


class TaskLoader(yaml.SafeLoader):
    """Safe YAML loader that also understands ``!function`` (restricted to ``eval.tasks``)."""


def _function_constructor(loader: yaml.SafeLoader, node: yaml.Node) -> FunctionRef:
    if not isinstance(node, yaml.ScalarNode):
        raise BadInputError(
            f"{node.start_mark.name}:{node.start_mark.line + 1}: !function takes a dotted name"
        )
    ref = str(loader.construct_scalar(node))
    try:
        return resolve_function(ref)
    except BadInputError as exc:
        raise BadInputError(f"{node.start_mark.name}:{node.start_mark.line + 1}: {exc}") from None


TaskLoader.add_constructor(FUNCTION_TAG, _function_constructor)


def load_yaml(path: Path) -> tuple[Any, yaml.Node | None]:
    """Read a task or suite file with :class:`TaskLoader`.

    Returns:
        The data and its composed node tree (for line numbers in error messages).

    Raises:
        BadInputError: the file is missing, not valid YAML, or has a bad ``!function``.
    """
    if not path.is_file():
        raise BadInputError(f"{path}: file not found")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.load(_named(text, path), Loader=TaskLoader)  # a SafeLoader subclass
        root = yaml.compose(_named(text, path), Loader=TaskLoader)
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from None
    return data, root


def _named(text: str, path: Path) -> io.StringIO:
    # PyYAML names the stream in its error marks after the stream's ``name`` attribute
    stream = io.StringIO(text)
    stream.name = str(path)
    return stream


def key_line(root: yaml.Node | None, key: str) -> int | None:
    """1-based line of a top-level key in a mapping node, if present."""
    if isinstance(root, yaml.MappingNode):
        for k, _ in root.value:
            if isinstance(k, yaml.ScalarNode) and k.value == key:
                return int(k.start_mark.line) + 1
    return None
