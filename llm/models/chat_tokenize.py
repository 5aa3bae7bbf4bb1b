"""One chat example to token ids and labels, with the loss on the assistant's tokens only.

The project's chat template (:mod:`llm.models.chat_template`) wraps assistant
turns in ``{% generation %}`` blocks, so ``apply_chat_template(...,
return_assistant_tokens_mask=True)`` marks exactly each assistant turn's
content and its closing ``<|eot_id|>``. Those tokens keep their ids as labels;
every other token (BOS, headers, system, user) gets :data:`IGNORE_INDEX`.

Truncation policy, for an example longer than ``max_length``
(``truncation="prompt_left"``, the default): tokens are removed from the START
of the user turns' text, earliest user turn first, until the example fits. The
system prompt (the task instruction), image placeholders and every assistant
turn are never cut; the end of the note, next to the question and the answer,
is what the model keeps. When even an empty user text leaves the example too
long, it is rejected with reason :data:`ANSWER_DOES_NOT_FIT` and counted, never
silently shortened. ``truncation="drop"`` rejects every too-long example
(reason :data:`TOO_LONG`) instead.

Multimodal content (a list of ``{"type": "text"|"image", ...}`` parts) renders
each image part as one ``<image>`` token. Pixel values are the processor's job
(the multimodal wrapper in ``llm.models``); when it expands each image into
``n`` embedding slots, pass ``image_seq_length=n`` so that the ids, labels and
lengths used for packing already hold those ``n`` slots.

Training (whole task datasets) and evaluation (prompts, answer scoring) both
tokenize through :func:`tokenize_chat`, so a prompt is rendered and truncated
the same way wherever it is used.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal, TypedDict

from llm.errors import BadInputError
from llm.models.chat_template import IMAGE_TOKEN

IGNORE_INDEX = -100  # torch cross-entropy's ignore_index, which transformers' loss uses

OK = "ok"
TRUNCATED = "truncated"  # kept, with part of the user text removed
ANSWER_DOES_NOT_FIT = "answer_does_not_fit"
TOO_LONG = "too_long"
NO_ASSISTANT_TOKENS = "no_assistant_tokens"
REJECT_REASONS = (ANSWER_DOES_NOT_FIT, TOO_LONG, NO_ASSISTANT_TOKENS)

Truncation = Literal["prompt_left", "drop"]

# Re-tokenising cut text can merge or split a token at the cut; a few rounds always settle it.
_MAX_TRUNCATION_ROUNDS = 8


class TokenizedChat(TypedDict):
    """One tokenized chat example (also one row of a tokenized dataset).

    ``status`` is :data:`OK`, :data:`TRUNCATED` or a reject reason; a rejected
    example has empty ``input_ids``/``labels``.
    """

    input_ids: list[int]
    labels: list[int]
    num_tokens: int
    num_label_tokens: int
    prompt_tokens_removed: int
    status: str


def _check_messages(messages: Any, where: str) -> list[dict[str, Any]]:
    """Messages as a list of dicts with a role and string or list-of-parts content."""
    if not isinstance(messages, Sequence) or isinstance(messages, str) or not messages:
        raise BadInputError(f"{where}: messages: expected a non-empty list of messages")
    checked: list[dict[str, Any]] = []
    for i, message in enumerate(messages):
        if not isinstance(message, Mapping):
            raise BadInputError(f"{where}: messages[{i}]: expected an object with role and content")
        role, content = message.get("role"), message.get("content")
        if role not in ("system", "user", "assistant"):
            raise BadInputError(
                f"{where}: messages[{i}].role: expected system, user or assistant, got {role!r}"
            )
        if not isinstance(content, str | list):
            raise BadInputError(
                f"{where}: messages[{i}].content: expected a string or a list of parts"
            )
        checked.append(dict(message))
    return checked


def _render(tokenizer: Any, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Token ids and assistant mask of ``messages`` under the tokenizer's chat template."""
    encoded = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    ids = list(encoded["input_ids"])
    mask = list(encoded["assistant_masks"])
    if len(mask) != len(ids):
        raise BadInputError("chat template: assistant mask and token ids differ in length")
    return ids, mask


def _cut_text_start(tokenizer: Any, text: str, n_tokens: int) -> tuple[str, int]:
    """``text`` without its first ``n_tokens`` tokens (cut at a token's character offset).

    Returns:
        The shortened text and the number of tokens actually removed.
    """
    encoded = tokenizer(text, add_special_tokens=False, return_offsets_mapping=True)
    offsets = encoded["offset_mapping"]
    if n_tokens >= len(offsets):
        return "", len(offsets)
    return text[offsets[n_tokens][0] :], n_tokens


def _cut_user_text(
    tokenizer: Any, messages: list[dict[str, Any]], excess: int
) -> tuple[list[dict[str, Any]], int]:
    """Messages with about ``excess`` tokens removed from the start of the user turns' text.

    Returns:
        The new messages and the number of tokens removed (0 when no user text is left).
    """
    removed = 0
    out = [dict(m) for m in messages]
    for message in out:
        if removed >= excess:
            break
        if message["role"] != "user":
            continue
        content = message["content"]
        if isinstance(content, str):
            message["content"], cut = _cut_text_start(tokenizer, content, excess - removed)
            removed += cut
            continue
        parts = [dict(p) for p in content]
        for part in parts:
            if removed >= excess:
                break
            if part.get("type") == "text" and part.get("text"):
                part["text"], cut = _cut_text_start(tokenizer, part["text"], excess - removed)
                removed += cut
        message["content"] = parts
    return out, removed


def _expand_images(
    ids: list[int], mask: list[int], image_token_id: int, image_seq_length: int
) -> tuple[list[int], list[int]]:
    """Repeat every image placeholder ``image_seq_length`` times (never trained)."""
    if image_seq_length == 1 or image_token_id not in ids:
        return ids, mask
    new_ids: list[int] = []
    new_mask: list[int] = []
    for tok, m in zip(ids, mask, strict=True):
        if tok == image_token_id:
            new_ids.extend([tok] * image_seq_length)
            new_mask.extend([0] * image_seq_length)
        else:
            new_ids.append(tok)
            new_mask.append(m)
    return new_ids, new_mask


def _result(ids: list[int], labels: list[int], removed: int, status: str) -> TokenizedChat:
    return TokenizedChat(
        input_ids=ids,
        labels=labels,
        num_tokens=len(ids),
        num_label_tokens=sum(lab != IGNORE_INDEX for lab in labels),
        prompt_tokens_removed=removed,
        status=status,
    )


def _rejected(reason: str) -> TokenizedChat:
    return _result([], [], 0, reason)


def tokenize_chat(
    messages: Sequence[Mapping[str, Any]],
    tokenizer: Any,
    *,
    max_length: int,
    assistant_only_loss: bool = True,
    truncation: Truncation = "prompt_left",
    image_seq_length: int = 1,
    where: str = "example",
) -> TokenizedChat:
    """Tokenize one chat example and label the tokens that carry the loss.

    Args:
        messages: the conversation: ``{"role", "content"}`` dicts; content is a
            string or a list of ``{"type": "text"|"image", ...}`` parts.
        tokenizer: a fast tokenizer whose chat template has ``{% generation %}``
            blocks (the project's :data:`~llm.models.chat_template.CHAT_TEMPLATE`).
        max_length: the longest token sequence allowed.
        assistant_only_loss: train only on assistant turns (content and closing
            ``<|eot_id|>``); when false every token is trained.
        truncation: ``"prompt_left"`` cuts user text from its start to fit;
            ``"drop"`` rejects too-long examples (see the module docstring).
        image_seq_length: embedding slots each image placeholder becomes in the
            multimodal model (1 for text models).
        where: how errors name this example (``"train row 17 (id ...)"``).

    Returns:
        The :class:`TokenizedChat`; its ``status`` says whether it was kept,
        truncated or rejected (and why).

    Raises:
        BadInputError: malformed messages, a template without generation
            markers, or a bad ``max_length``/``image_seq_length``.
    """
    if max_length < 1:
        raise BadInputError(f"max_length must be at least 1, got {max_length}")
    if image_seq_length < 1:
        raise BadInputError(f"image_seq_length must be at least 1, got {image_seq_length}")
    checked = _check_messages(messages, where)
    image_token_id = tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    has_assistant = any(m["role"] == "assistant" for m in checked)

    def encode(msgs: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
        ids, mask = _render(tokenizer, msgs)
        return _expand_images(ids, mask, image_token_id, image_seq_length)

    ids, mask = encode(checked)
    if has_assistant and not any(mask):
        raise BadInputError(
            "chat template marks no assistant tokens: it needs {% generation %} blocks "
            "(use llm.models.chat_template.CHAT_TEMPLATE)"
        )
    if assistant_only_loss and not any(mask):
        return _rejected(NO_ASSISTANT_TOKENS)

    removed = 0
    if len(ids) > max_length:
        if truncation == "drop":
            return _rejected(TOO_LONG)
        current = checked
        for _ in range(_MAX_TRUNCATION_ROUNDS):
            current, cut = _cut_user_text(tokenizer, current, len(ids) - max_length)
            if cut == 0:
                return _rejected(ANSWER_DOES_NOT_FIT)
            removed += cut
            ids, mask = encode(current)
            if len(ids) <= max_length:
                break
        else:
            return _rejected(ANSWER_DOES_NOT_FIT)

    if assistant_only_loss:
        labels = [tok if m else IGNORE_INDEX for tok, m in zip(ids, mask, strict=True)]
    else:
        labels = list(ids)
    # The first token is never a prediction target (nothing precedes it); saying so
    # here keeps the label count equal to what the shifted loss actually trains.
    labels[0] = IGNORE_INDEX
    return _result(ids, labels, removed, TRUNCATED if removed else OK)
