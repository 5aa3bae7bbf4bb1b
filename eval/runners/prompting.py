"""Chat prompts to token ids for runners that tokenize themselves (local, vLLM).

The prompt is rendered by the model's own chat template with the assistant
header opened (``add_generation_prompt``). When it does not fit in
``max_length - max_new_tokens`` tokens, it is cut the way training cuts
(:func:`llm.models.chat_tokenize.tokenize_chat`, ``prompt_left``: user text removed
from its start, the system prompt kept), so a model is evaluated on the same
view of a long note it was trained on.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from eval.runners.base import Message
from llm.errors import BadInputError
from llm.models.chat_tokenize import IGNORE_INDEX, tokenize_chat


def render_prompt_ids(tokenizer: Any, messages: Sequence[Message]) -> list[int]:
    """Token ids of ``messages`` followed by an opened assistant turn."""
    ids = tokenizer.apply_chat_template(
        list(messages), tokenize=True, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    return list(ids)


def encode_prompt(
    tokenizer: Any, messages: Sequence[Message], budget: int
) -> tuple[list[int], bool]:
    """Prompt ids within ``budget`` tokens, and whether user text had to be cut.

    Args:
        tokenizer: the model's tokenizer (with a chat template).
        messages: the prompt conversation (no assistant answer).
        budget: most prompt tokens (the model's length minus the generation length).

    Returns:
        ``(ids, truncated)``.

    Raises:
        BadInputError: the prompt cannot be cut to fit (the system prompt alone is
            too long, or the chat template has no ``{% generation %}`` markers to
            find the answer's position by).
    """
    ids = render_prompt_ids(tokenizer, messages)
    if len(ids) <= budget:
        return ids, False
    # an empty answer gives the same prompt tokens plus the answer's <|eot_id|>, which
    # tokenize_chat labels; everything before the first label is the opened prompt
    tokenized = tokenize_chat(
        [*messages, {"role": "assistant", "content": ""}],
        tokenizer,
        max_length=budget + 1,
        where="prompt",
    )
    labelled = [i for i, label in enumerate(tokenized["labels"]) if label != IGNORE_INDEX]
    if not tokenized["input_ids"] or not labelled:
        raise BadInputError(
            f"a prompt of {len(ids)} tokens does not fit in {budget} tokens even with its "
            f"user text cut ({tokenized['status']}); raise the model's max length or lower "
            "max_tokens"
        )
    return list(tokenized["input_ids"][: labelled[0]]), True
