"""OpenAI request parameters this gateway does not implement, and how it refuses them.

The gateway never accepts a parameter and then ignores it: a client asking for
tools, JSON mode, log probabilities or a penalty would get an ordinary answer
and believe it was honoured. Each parameter OpenAI defines for the endpoint but
this gateway does not implement is listed here with the values that ask for
nothing (``null`` always, and e.g. ``presence_penalty: 0``, ``tools: []``,
``response_format: {"type": "text"}``, which some clients send by default);
any other value, and any field OpenAI does not define, is a 400
``unsupported_parameter`` naming the field (:func:`check_supported`).

The same table documents these parameters in the OpenAPI schema
(:func:`document_unsupported`): each appears with only its neutral values, and
the request objects admit no other property.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from serving.errors import BadRequestError

# Field names we repeat must be harmless: a client could put text in a key.
_FIELD_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
UNSUPPORTED_CODE = "unsupported_parameter"


@dataclass(frozen=True)
class NeutralOnly:
    """An OpenAI parameter accepted only at values that ask for nothing.

    Attributes:
        accepts: True for a neutral value (``None`` is always neutral).
        schema: JSON schema of the neutral values (``null`` is added).
        allowed: the neutral values as the error message names them.
    """

    accepts: Callable[[Any], bool]
    schema: dict[str, Any]
    allowed: str


def _is_zero(value: Any) -> bool:
    return type(value) in (int, float) and value == 0


def _const(constant: Any) -> Callable[[Any], bool]:
    # type-exact: False == 0 in Python, and {} == {} must not accept []
    return lambda value: type(value) is type(constant) and value == constant


_FALSE = NeutralOnly(_const(False), {"const": False}, "false")
_ZERO = NeutralOnly(_is_zero, {"type": "number", "enum": [0]}, "0")
_EMPTY_LIST = NeutralOnly(_const([]), {"type": "array", "maxItems": 0}, "[]")
_EMPTY_OBJECT = NeutralOnly(_const({}), {"type": "object", "maxProperties": 0}, "{}")
_NULL = NeutralOnly(lambda value: False, {"not": {}}, "nothing")

# Parameters of both endpoints (OpenAI's API reference, chat and legacy completions).
_SHARED: dict[str, NeutralOnly] = {
    "frequency_penalty": _ZERO,
    "presence_penalty": _ZERO,
    "logit_bias": _EMPTY_OBJECT,
}

CHAT_UNSUPPORTED: dict[str, NeutralOnly] = {
    **_SHARED,
    "logprobs": _FALSE,
    "top_logprobs": NeutralOnly(_const(0), {"type": "integer", "enum": [0]}, "0"),
    "tools": _EMPTY_LIST,
    "functions": _EMPTY_LIST,
    "tool_choice": NeutralOnly(_const("none"), {"const": "none"}, '"none"'),
    "function_call": NeutralOnly(_const("none"), {"const": "none"}, '"none"'),
    # with no tools there is nothing to call in parallel: any boolean asks for nothing
    "parallel_tool_calls": NeutralOnly(
        lambda v: isinstance(v, bool), {"type": "boolean"}, "a boolean"
    ),
    "response_format": NeutralOnly(
        _const({"type": "text"}),
        {
            "type": "object",
            "properties": {"type": {"const": "text"}},
            "required": ["type"],
            "additionalProperties": False,
        },
        '{"type": "text"}',
    ),
    "store": _FALSE,
    "metadata": _EMPTY_OBJECT,
    "modalities": NeutralOnly(
        _const(["text"]),
        {"type": "array", "items": {"const": "text"}, "minItems": 1, "maxItems": 1},
        '["text"]',
    ),
    "service_tier": NeutralOnly(
        lambda v: v in ("auto", "default"), {"enum": ["auto", "default"]}, '"auto" or "default"'
    ),
    "audio": _NULL,
    "prediction": _NULL,
    "reasoning_effort": _NULL,
    "verbosity": _NULL,
    "web_search_options": _NULL,
}

COMPLETION_UNSUPPORTED: dict[str, NeutralOnly] = {
    **_SHARED,
    "logprobs": _NULL,  # an integer here: even 0 asks for the chosen tokens' log probabilities
    "echo": _FALSE,
    "best_of": NeutralOnly(_const(1), {"type": "integer", "enum": [1]}, "1"),
    "suffix": NeutralOnly(_const(""), {"const": ""}, '""'),
}


def _refusal(name: str, table: Mapping[str, NeutralOnly]) -> str:
    if name in table:
        allowed = table[name].allowed
        only = "null" if allowed == "nothing" else f"{allowed} or null"
        return f"{name}: not supported by this server (only {only} is accepted)"
    return f"{name}: unknown parameter; this server does not support it"


def check_supported(extra: Mapping[str, Any], table: Mapping[str, NeutralOnly]) -> None:
    """Refuse the request fields the gateway would otherwise ignore.

    Args:
        extra: the request's fields that are not among the implemented ones (pydantic's
            ``model_extra``).
        table: the endpoint's unsupported OpenAI parameters with their neutral values.

    Raises:
        BadRequestError: 400 ``unsupported_parameter``; ``param`` names the first refused
            field (its name only, and only when it looks like an identifier: a client could
            put any text in a key; values are never repeated).
    """
    refused = [
        name
        for name, value in extra.items()
        if not (name in table and (value is None or table[name].accepts(value)))
    ]
    if not refused:
        return
    named = sorted(name for name in refused if _FIELD_NAME.match(name))
    parts = [_refusal(name, table) for name in named[:3]]
    if len(named) > 3:
        parts.append(f"and {len(named) - 3} more")
    odd = len(refused) - len(named)
    if odd:
        parts.append(f"{odd} field(s) with names that are not identifiers")
    raise BadRequestError(
        "unsupported parameter(s): " + "; ".join(parts),
        param=named[0] if named else None,
        code=UNSUPPORTED_CODE,
    )


def document_unsupported(
    schema: dict[str, Any], table: Mapping[str, NeutralOnly], implemented: Iterable[str]
) -> None:
    """Add the table's parameters to a request model's JSON schema, and close the object.

    Args:
        schema: the model's JSON schema (changed in place).
        table: the unsupported parameters and their neutral values.
        implemented: the fields the model implements (never shadowed).
    """
    properties = schema.setdefault("properties", {})
    done = set(implemented)
    for name, neutral in table.items():
        if name in done:
            continue
        allowed = "null" if neutral.allowed == "nothing" else f"{neutral.allowed} or null"
        properties[name] = {
            "anyOf": [neutral.schema, {"type": "null"}],
            "description": f"Not supported by this server: only {allowed} is accepted "
            "(anything else is a 400 unsupported_parameter).",
        }
    schema["additionalProperties"] = False
