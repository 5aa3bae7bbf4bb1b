"""Accuracy of a chat model on a classification task split: constrained choice and greedy.

* :func:`choice_accuracy`: score every allowed answer's log-likelihood given
  the prompt (the answer's tokens and its ``<|eot_id|>``, exactly the tokens
  training puts a loss on) and pick the most likely one. The model can only
  answer with an allowed label, so this measures what it learnt about the
  labels, not whether it learnt the output format.
* :func:`generation_accuracy`: greedy decoding from the prompt until the end of
  turn, then exact match (after trimming whitespace) against the reference.

Both tokenize through :func:`llm.train.tokenize.tokenize_chat`, so prompts are
rendered and truncated exactly as in training. Rows are the task dataset rows
of ``clinical-llm data build`` (``id``, ``messages`` ending with the assistant
answer, ``answer``, ``demographics``); each result carries per-example
predictions in the shape of the predictions contract (``id``, ``prediction``,
``reference``, ``score``, ``demographics``) for ``eval subgroups``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import torch

from llm.errors import BadInputError
from llm.models.chat_tokenize import IGNORE_INDEX, tokenize_chat


def _prompt_messages(row: Mapping[str, Any], where: str) -> list[dict[str, Any]]:
    messages = list(row.get("messages") or [])
    if not messages or messages[-1].get("role") != "assistant":
        raise BadInputError(f"{where}: messages: expected a conversation ending with the answer")
    for i, message in enumerate(messages):
        if not isinstance(message.get("content"), str):
            raise BadInputError(
                f"{where}: messages[{i}].content: only text tasks are supported (got parts)"
            )
    return [dict(m) for m in messages[:-1]]


def _device(model: Any) -> torch.device:
    return next(model.parameters()).device


def _answer_log_likelihoods(
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
    """
    rows = []
    for choice in choices:
        chat = [*prompt, {"role": "assistant", "content": choice}]
        tokenized = tokenize_chat(chat, tokenizer, max_length=max_length)
        if not tokenized["input_ids"]:
            raise BadInputError(
                f"answer {choice!r} does not fit in max_length {max_length}: {tokenized['status']}"
            )
        rows.append(tokenized)
    shared = _shared_prompt_length(rows)
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


def _rows(dataset: Iterable[Mapping[str, Any]]) -> list[Mapping[str, Any]]:
    rows = list(dataset)
    if not rows:
        raise BadInputError("the dataset is empty: nothing to evaluate")
    return rows


def _summary(predictions: list[dict[str, Any]], choices: Sequence[str]) -> dict[str, Any]:
    correct = sum(p["prediction"] == p["reference"] for p in predictions)
    per_label: dict[str, dict[str, int]] = {}
    for p in predictions:
        entry = per_label.setdefault(str(p["reference"]), {"n": 0, "correct": 0})
        entry["n"] += 1
        entry["correct"] += p["prediction"] == p["reference"]
    return {
        "n": len(predictions),
        "correct": correct,
        "accuracy": correct / len(predictions),
        "choices": list(choices),
        "per_label": dict(sorted(per_label.items())),
        "predictions": predictions,
    }


def choice_accuracy(
    model: Any,
    tokenizer: Any,
    dataset: Iterable[Mapping[str, Any]],
    *,
    choices: Sequence[str] | None = None,
    max_length: int = 1024,
) -> dict[str, Any]:
    """Accuracy when the model must pick one of the allowed answers (highest log-likelihood).

    Args:
        model: a causal LM (a ``PeftModel`` works), in eval mode.
        tokenizer: its tokenizer, with the project's chat template.
        dataset: task rows (``messages`` ending with the reference answer, ``answer``).
        choices: the allowed answers; default: the distinct ``answer`` values of
            ``dataset`` (pass the task's full answer space from the dataset
            manifest when a split may lack a class).
        max_length: prompts are truncated to fit as in training (user text cut from the start).

    Returns:
        ``{"n", "correct", "accuracy", "choices", "per_label", "predictions"}``;
        each prediction has ``id``, ``prediction``, ``reference``, ``score`` (the
        chosen answer's log-likelihood) and ``demographics``.

    Raises:
        BadInputError: an empty dataset, a row that is not a text conversation
            ending with its answer, or fewer than two choices.
    """
    rows = _rows(dataset)
    allowed = list(choices) if choices is not None else sorted({str(r["answer"]) for r in rows})
    if len(allowed) < 2:
        raise BadInputError(f"choice accuracy needs at least two choices, got {allowed}")
    predictions = []
    for i, row in enumerate(rows):
        where = f"row {i} (id {row.get('id')})"
        scores = _answer_log_likelihoods(
            model, tokenizer, _prompt_messages(row, where), allowed, max_length
        )
        best = max(range(len(allowed)), key=scores.__getitem__)
        predictions.append(
            {
                "id": row.get("id"),
                "prediction": allowed[best],
                "reference": str(row["answer"]),
                "score": scores[best],
                "demographics": row.get("demographics"),
            }
        )
    return _summary(predictions, allowed)


def generation_accuracy(
    model: Any,
    tokenizer: Any,
    dataset: Iterable[Mapping[str, Any]],
    *,
    max_new_tokens: int = 16,
    max_length: int = 1024,
) -> dict[str, Any]:
    """Exact-match accuracy of greedy answers (generation stops at the end of turn).

    Args:
        model: a causal LM with a ``generate`` method, in eval mode.
        tokenizer: its tokenizer, with the project's chat template.
        dataset: task rows (``messages`` ending with the reference answer, ``answer``).
        max_new_tokens: longest answer generated.
        max_length: prompts are truncated to ``max_length - max_new_tokens`` tokens.

    Returns:
        As :func:`choice_accuracy`, with the generated text (stripped) as
        ``prediction`` and ``score`` None; ``choices`` lists the references seen.

    Raises:
        BadInputError: an empty dataset or a row that is not a text conversation.
    """
    rows = _rows(dataset)
    device = _device(model)
    eot = tokenizer.eos_token_id
    predictions = []
    for i, row in enumerate(rows):
        where = f"row {i} (id {row.get('id')})"
        prompt = _prompt_messages(row, where)
        # tokenize with an empty answer so truncation matches training, then drop the
        # answer's tokens (its <|eot_id|>) and open the assistant turn
        chat = [*prompt, {"role": "assistant", "content": ""}]
        tokenized = tokenize_chat(chat, tokenizer, max_length=max_length - max_new_tokens)
        labelled = [j for j, lab in enumerate(tokenized["labels"]) if lab != IGNORE_INDEX]
        ids = tokenized["input_ids"][: labelled[0]] if labelled else tokenized["input_ids"]
        input_ids = torch.tensor([ids], device=device)
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids,
                attention_mask=torch.ones_like(input_ids),
                max_new_tokens=max_new_tokens,
                do_sample=False,
                eos_token_id=eot,
                pad_token_id=tokenizer.pad_token_id,
            )
        text = tokenizer.decode(out[0, input_ids.shape[1] :], skip_special_tokens=True).strip()
        predictions.append(
            {
                "id": row.get("id"),
                "prediction": text,
                "reference": str(row["answer"]),
                "score": None,
                "demographics": row.get("demographics"),
            }
        )
    references = sorted({p["reference"] for p in predictions})
    return _summary(predictions, references)
