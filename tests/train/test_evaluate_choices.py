"""Choice scoring with a shared prompt cache equals scoring each full conversation alone."""

from __future__ import annotations

from typing import Any

import pytest
import torch

from llm.train.evaluate_choices import _answer_log_likelihoods
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
    scores = _answer_log_likelihoods(model, chat_tokenizer, PROMPT, CHOICES, max_length)
    expected = [full_log_likelihood(model, chat_tokenizer, c, max_length) for c in CHOICES]
    torch.testing.assert_close(torch.tensor(scores), torch.tensor(expected), rtol=1e-4, atol=1e-4)
