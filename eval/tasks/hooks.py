"""Functions that task files may name with ``!function hooks.<name>``.

Only functions defined in modules of ``eval.tasks`` can be referenced from a
task file (see :mod:`eval.tasks.yaml_loader`); each takes a dataset row (or a
conversation) and returns prompt messages or text.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llm.errors import BadInputError

Message = dict[str, Any]


def prompt_messages(row: Mapping[str, Any]) -> list[Message]:
    """The row's conversation without its final assistant turn (the reference answer).

    Raises:
        BadInputError: the conversation does not end with an assistant turn.
    """
    messages = list(row.get("messages") or [])
    if not messages or not isinstance(messages[-1], Mapping):
        raise BadInputError("messages: expected a non-empty list of messages")
    if messages[-1].get("role") != "assistant":
        raise BadInputError("messages: expected the conversation to end with the answer")
    return [dict(m) for m in messages[:-1]]


def content_text(content: Any, *, image_placeholder: str | None = None) -> str:
    """Text of a message's content: a string, or the text parts of a parts list joined.

    Args:
        content: a string or ``[{"type": "text"|"image", ...}]``.
        image_placeholder: written where an image part was (None: images left out).
    """
    if isinstance(content, str):
        return content
    pieces: list[str] = []
    for part in content or []:
        if part.get("type") == "text" and part.get("text"):
            pieces.append(str(part["text"]))
        elif part.get("type") == "image" and image_placeholder is not None:
            pieces.append(image_placeholder)
    return "".join(pieces)


def has_images(messages: Sequence[Mapping[str, Any]]) -> bool:
    """Whether any message holds an image part."""
    return any(
        isinstance(m.get("content"), list) and any(p.get("type") == "image" for p in m["content"])
        for m in messages
    )


def without_images(messages: Sequence[Mapping[str, Any]]) -> list[Message]:
    """Text-only messages: image parts dropped, text parts joined into string content.

    The text is what the chat template renders around the ``<image>`` token, so a
    text model sees the same words a vision-language model would, minus the image.
    """
    return [{"role": m["role"], "content": content_text(m.get("content"))} for m in messages]


def user_text(row: Mapping[str, Any]) -> str:
    """The text of the row's user turns (images left out), for ``doc_to_text``.

    With ``system:`` in the task file this replaces the dataset's system prompt
    by the task's own, e.g. to try another instruction wording on the same notes.
    """
    return "\n\n".join(
        content_text(m.get("content")) for m in prompt_messages(row) if m.get("role") == "user"
    )
