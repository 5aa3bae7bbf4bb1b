"""Answer scoring: the answer tokens after the opened assistant turn, with a shared prompt cache."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llm.models.answer_scoring import answer_log_likelihoods
from llm.models.chat_tokenize import IGNORE_INDEX, tokenize_chat
from tests.train.conftest import tiny_llama

PROMPT = [
    {"role": "system", "content": "Answer with exactly one of the diagnoses."},
    {"role": "user", "content": "CHIEF COMPLAINT: cough and fever for three days. " * 3},
]
CHOICES = ["no", "pneumonia", "heart failure with reduced ejection fraction", "yes"]


def full_log_likelihood(model: Any, tokenizer: Any, choice: str, max_length: int) -> float:
    """The answer's trained tokens scored by one forward pass over the whole conversation."""
    chat = [*PROMPT, {"role": "assistant", "content": choice}]
    tokenized = tokenize_chat(chat, tokenizer, max_length=max_length)
    ids = torch.tensor([tokenized["input_ids"]])
    labels = torch.tensor([tokenized["labels"]])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0, :-1].float(), dim=-1)
    target = labels[0, 1:]
    keep = target != IGNORE_INDEX
    return float(logprobs[keep].gather(-1, target[keep].unsqueeze(-1)).sum())


# at 80 tokens each answer truncates the prompt differently
@pytest.mark.parametrize("max_length", [256, 80])
def test_shared_prompt_scores_equal_full_passes(chat_tokenizer: Any, max_length: int) -> None:
    model = tiny_llama(len(chat_tokenizer), "sdpa")
    scores = answer_log_likelihoods(model, chat_tokenizer, PROMPT, CHOICES, max_length)
    expected = [full_log_likelihood(model, chat_tokenizer, c, max_length) for c in CHOICES]
    torch.testing.assert_close(torch.tensor(scores), torch.tensor(expected), rtol=1e-4, atol=1e-4)


def reference_log_likelihood(model: Any, tokenizer: Any, answer: str) -> float:
    """log p(answer tokens + <|eot_id|> | prompt rendered with the assistant turn opened)."""
    prompt = tokenizer.apply_chat_template(
        PROMPT, tokenize=True, add_generation_prompt=True, return_dict=True
    )["input_ids"]
    target = tokenizer(answer, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    ids = torch.tensor([list(prompt) + target])
    with torch.no_grad():
        logprobs = torch.log_softmax(model(input_ids=ids).logits[0].float(), dim=-1)
    start = len(prompt)
    return sum(float(logprobs[start + i - 1, t]) for i, t in enumerate(target))


def test_scores_are_the_answer_tokens_after_the_generation_prompt(chat_tokenizer: Any) -> None:
    model = tiny_llama(len(chat_tokenizer), "sdpa")
    scores = answer_log_likelihoods(model, chat_tokenizer, PROMPT, ["no", "yes"], 256)
    expected = [reference_log_likelihood(model, chat_tokenizer, a) for a in ("no", "yes")]
    assert scores == pytest.approx(expected, abs=1e-4)
