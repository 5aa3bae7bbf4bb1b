"""Chat examples to token ids and labels, with the loss on the assistant's tokens only.

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
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
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


@dataclass
class TokenizeStats:
    """Counts of one tokenization pass; ``read == used + rejected`` always holds.

    Attributes:
        read: examples seen.
        used: examples kept (``truncated`` of them had user text cut).
        truncated: kept examples whose user text was shortened to fit.
        rejected: examples left out, by reason (:data:`REJECT_REASONS`).
        tokens: total tokens of the kept examples.
        label_tokens: tokens that carry a loss in the kept examples.
        prompt_tokens_removed: user-text tokens cut by truncation, in total.
    """

    read: int = 0
    used: int = 0
    truncated: int = 0
    rejected: dict[str, int] = field(default_factory=dict)
    tokens: int = 0
    label_tokens: int = 0
    prompt_tokens_removed: int = 0

    @property
    def rejected_total(self) -> int:
        """Examples left out, all reasons together."""
        return sum(self.rejected.values())

    def add(self, row: Mapping[str, Any]) -> None:
        """Count one :class:`TokenizedChat` (or a dataset row of one)."""
        self.read += 1
        status = str(row["status"])
        if status in (OK, TRUNCATED):
            self.used += 1
            self.truncated += status == TRUNCATED
            self.tokens += int(row["num_tokens"])
            self.label_tokens += int(row["num_label_tokens"])
            self.prompt_tokens_removed += int(row["prompt_tokens_removed"])
        else:
            self.rejected[status] = self.rejected.get(status, 0) + 1

    def summary(self) -> str:
        """One PHI-free line: ``read N = used U + rejected R`` plus reasons and token counts."""
        reasons = ", ".join(f"{k}: {v}" for k, v in sorted(self.rejected.items()))
        line = f"read {self.read} = used {self.used} + rejected {self.rejected_total}"
        if reasons:
            line += f" ({reasons})"
        return (
            f"{line}; truncated {self.truncated}; tokens {self.tokens}, trained {self.label_tokens}"
        )


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


def tokenize_batch(
    batch: Mapping[str, list[Any]],
    indices: list[int] | None = None,
    *,
    tokenizer: Any,
    max_length: int,
    assistant_only_loss: bool = True,
    truncation: Truncation = "prompt_left",
    image_seq_length: int = 1,
    split: str = "dataset",
) -> dict[str, list[Any]]:
    """Batched ``datasets.map`` function: :func:`tokenize_chat` over a ``messages`` column.

    Rejected rows stay in the output (``status`` says why) so that the caller can
    count them before filtering; see :func:`tokenize_dataset`.

    Args:
        batch: columns of a batch; needs ``messages`` (and uses ``id`` in errors).
        indices: row indices (``with_indices=True``), used in error messages.
        tokenizer: see :func:`tokenize_chat`.
        max_length: see :func:`tokenize_chat`.
        assistant_only_loss: see :func:`tokenize_chat`.
        truncation: see :func:`tokenize_chat`.
        image_seq_length: see :func:`tokenize_chat`.
        split: the split's name, for error messages.

    Returns:
        The :class:`TokenizedChat` columns for the batch.

    Raises:
        BadInputError: a row's messages are malformed (its index and id named).
    """
    if "messages" not in batch:
        raise BadInputError(f"{split}: no 'messages' column (columns: {sorted(batch)})")
    out: dict[str, list[Any]] = {key: [] for key in TokenizedChat.__annotations__}
    ids = batch.get("id")
    for i, messages in enumerate(batch["messages"]):
        row = indices[i] if indices is not None else i
        where = f"{split} row {row}" + (f" (id {ids[i]})" if ids is not None else "")
        tokenized = tokenize_chat(
            messages,
            tokenizer,
            max_length=max_length,
            assistant_only_loss=assistant_only_loss,
            truncation=truncation,
            image_seq_length=image_seq_length,
            where=where,
        )
        for key, value in tokenized.items():
            out[key].append(value)
    return out


def tokenize_dataset(
    dataset: Any,
    tokenizer: Any,
    *,
    max_length: int,
    assistant_only_loss: bool = True,
    truncation: Truncation = "prompt_left",
    image_seq_length: int = 1,
    split: str = "dataset",
    num_proc: int | None = None,
) -> tuple[Any, TokenizeStats]:
    """Tokenize a ``datasets.Dataset`` of chat rows and drop (and count) rejected rows.

    Args:
        dataset: a ``datasets.Dataset`` with a ``messages`` column.
        tokenizer: see :func:`tokenize_chat`.
        max_length: see :func:`tokenize_chat`.
        assistant_only_loss: see :func:`tokenize_chat`.
        truncation: see :func:`tokenize_chat`.
        image_seq_length: see :func:`tokenize_chat`.
        split: the split's name, for error messages.
        num_proc: worker processes for ``datasets.map``.

    Returns:
        The kept rows (original columns plus the :class:`TokenizedChat` ones) and
        the :class:`TokenizeStats` of the pass.

    Raises:
        BadInputError: a row's messages are malformed.
    """
    tokenized = dataset.map(
        tokenize_batch,
        batched=True,
        with_indices=True,
        num_proc=num_proc,
        fn_kwargs={
            "tokenizer": tokenizer,
            "max_length": max_length,
            "assistant_only_loss": assistant_only_loss,
            "truncation": truncation,
            "image_seq_length": image_seq_length,
            "split": split,
        },
        desc=f"tokenize {split}",
    )
    stats = TokenizeStats()
    columns = tokenized.select_columns(
        ["status", "num_tokens", "num_label_tokens", "prompt_tokens_removed"]
    )
    for row in columns:
        stats.add(row)
    kept_status = {OK, TRUNCATED}
    kept = tokenized.filter(
        lambda statuses: [s in kept_status for s in statuses],
        batched=True,
        input_columns=["status"],
        num_proc=num_proc,
        desc=f"drop rejected {split}",
    )
    return kept, stats
