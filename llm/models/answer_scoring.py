"""The log-likelihood of each allowed answer to a chat prompt (constrained choice).

A choice is scored on its answer's tokens and its ``<|eot_id|>``: exactly the
tokens training puts a loss on. Prompt and answer are tokenized through
:func:`llm.models.chat_tokenize.tokenize_chat`, so the prompt is rendered and
truncated as in training. The local eval runner (``clinical-llm eval run``,
log-likelihood tasks) scores choices here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import torch

from llm.errors import BadInputError
from llm.models.chat_tokenize import IGNORE_INDEX, TokenizedChat, tokenize_chat


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def answer_log_likelihoods(
    model: Any,
    tokenizer: Any,
    prompt: list[dict[str, Any]],
    choices: Sequence[str],
    max_length: int,
) -> list[float]:
    """Sum of log-probabilities of each choice's trained tokens given ``prompt``.

    The prompt is run once and its KV cache shared by every choice: only the
    answers' few tokens are run per choice (8 diagnosis choices of a 600-token
    prompt cost one prompt pass instead of eight).

    Args:
        model: a causal LM (a ``PeftModel`` works) in eval mode.
        tokenizer: its tokenizer, with the project's chat template.
        prompt: the conversation before the answer (system and user turns).
        choices: the allowed answers, scored in this order.
        max_length: longest prompt + answer in tokens; the prompt is cut to fit
            as in training (user text removed from its start).

    Returns:
        One log-likelihood per choice: its answer tokens and closing
        ``<|eot_id|>``, exactly the tokens fine-tuning puts a loss on.

    Raises:
        BadInputError: a choice that cannot fit in ``max_length``, or answers
            that share no prompt tokens.
    """
    rows, shared = tokenize_choices(tokenizer, prompt, choices, max_length)
    device = _device(model)
    with torch.no_grad():
        head = torch.tensor([rows[0]["input_ids"][:shared]], device=device)
        out = model(input_ids=head, use_cache=True, logits_to_keep=1)
        # the prompt's last logits predict every answer's first token
        first = torch.log_softmax(out.logits[0, -1].float(), dim=-1)
        cache = out.past_key_values
        width = max(len(r["input_ids"]) for r in rows) - shared
        ids = torch.full((len(rows), width), tokenizer.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        mask = torch.zeros((len(rows), shared + width), dtype=torch.long)
        mask[:, :shared] = 1
        for i, r in enumerate(rows):
            n = len(r["input_ids"]) - shared
            ids[i, :n] = torch.tensor(r["input_ids"][shared:])
            labels[i, :n] = torch.tensor(r["labels"][shared:])
            mask[i, shared : shared + n] = 1
        cache.batch_repeat_interleave(len(rows))
        logits = model(
            input_ids=ids.to(device), attention_mask=mask.to(device), past_key_values=cache
        ).logits.float()
    labels = labels.to(device)
    scores = first[labels[:, 0].clamp(min=0)] * (labels[:, 0] != IGNORE_INDEX)
    logprobs = torch.log_softmax(logits[:, :-1], dim=-1)
    target = labels[:, 1:]
    keep = target != IGNORE_INDEX
    picked = logprobs.gather(-1, target.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (scores + (picked * keep).sum(dim=-1)).tolist()


def tokenize_choices(
    tokenizer: Any, prompt: list[dict[str, Any]], choices: Sequence[str], max_length: int
) -> tuple[list[TokenizedChat], int]:
    """Each choice as the assistant's answer to ``prompt``, tokenized as in training.

    Shared by every scorer of answers (torch here, OpenVINO in
    :mod:`llm.models.openvino_ir`), so all score the same tokens.

    Returns:
        The tokenized rows (ids and labels, in the order of ``choices``) and how many
        leading prompt tokens every row shares.

    Raises:
        BadInputError: a choice that cannot fit in ``max_length``, or answers that share
            no prompt tokens.
    """
    rows: list[TokenizedChat] = []
    for choice in choices:
        chat = [*prompt, {"role": "assistant", "content": choice}]
        tokenized = tokenize_chat(chat, tokenizer, max_length=max_length)
        if not tokenized["input_ids"]:
            raise BadInputError(
                f"answer {choice!r} does not fit in max_length {max_length}: {tokenized['status']}"
            )
        rows.append(tokenized)
    return rows, _shared_prompt_length(rows)


def _shared_prompt_length(rows: Sequence[Mapping[str, Any]]) -> int:
    """Tokens every row shares before its first trained (answer) token."""
    first_answer = min(
        next(j for j, label in enumerate(r["labels"]) if label != IGNORE_INDEX) for r in rows
    )
    shared = 0
    ids = [r["input_ids"] for r in rows]
    while shared < first_answer and all(row[shared] == ids[0][shared] for row in ids):
        shared += 1
    if shared == 0:
        raise BadInputError("the answers share no prompt tokens: nothing to condition on")
    return shared
