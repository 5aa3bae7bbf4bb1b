"""``--set key.sub=value`` overrides applied to a YAML mapping before validation.

One parser for every YAML the project reads with overrides (training recipes,
eval suites), so ``--set`` means the same everywhere: the value parses as a
YAML scalar or flow list (``false``, ``10``, ``null``, ``[a, b]``), overrides
apply in order, and one that reaches inside a list or a scalar is refused with
a message saying to set the whole value.
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from typing import Any

import yaml

from llm.errors import BadInputError


def parse_override(raw: str) -> tuple[tuple[str, ...], Any]:
    """Split ``key.sub=value`` into the key path and the value parsed as a YAML scalar.

    ``false``/``true``/``null``, numbers and flow lists (``[a, b]``) parse as
    YAML does, so ``--set data.packing=false`` is the boolean False.

    Raises:
        BadInputError: no ``=``, an empty key part, or a value YAML cannot parse.
    """
    key, sep, value = raw.partition("=")
    keys = tuple(key.strip().split("."))
    if not sep or not all(k.strip() for k in keys):
        raise BadInputError(f"--set {raw}: expected key.sub=value (e.g. training.max_steps=10)")
    try:
        parsed = yaml.safe_load(value) if value.strip() else None
    except yaml.YAMLError as exc:
        raise BadInputError(f"--set {raw}: the value is not valid YAML: {exc}") from None
    return tuple(k.strip() for k in keys), parsed


def apply_overrides(
    data: dict[str, Any], overrides: Sequence[str]
) -> tuple[dict[str, Any], dict[tuple[str, ...], str]]:
    """Apply ``--set`` overrides, in order, to a copy of a YAML mapping (a recipe, a suite).

    Returns:
        The merged mapping, and each overridden key path with its raw ``--set`` text.

    Raises:
        BadInputError: a malformed override, or one that reaches inside a list or a
            scalar that is not a mapping (the message says to set the whole value).
    """
    merged = copy.deepcopy(data)
    touched: dict[tuple[str, ...], str] = {}
    for raw in overrides:
        keys, value = parse_override(raw)
        node = merged
        for depth, key in enumerate(keys[:-1]):
            child = node.get(key)
            if child is None:
                child = node[key] = {}
            elif not isinstance(child, dict):
                where = ".".join(keys[: depth + 1])
                raise BadInputError(
                    f"--set {raw}: {where} is not a mapping; set the whole value "
                    f"(e.g. --set {where}=[a,b])"
                )
            node = child
        node[keys[-1]] = value
        touched[keys] = raw
    return merged, touched
