"""Sparse logits: the loss on target positions only equals the model's loss on full logits."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from peft import LoraConfig, get_peft_model

from llm.models.chat_tokenize import IGNORE_INDEX, TokenizedChat, tokenize_chat
from llm.train.loss import (
    accepts_logits_to_keep,
    target_positions,
    targeted_causal_lm_loss,
)
from llm.train.packing import PackedCollator, PaddedCollator
from tests.train.conftest import tiny_llama

CHATS = [
    ("Labs: WBC 14.2 K/uL, lactate 2.1 mmol/L.", "yes"),
    ("CHIEF COMPLAINT: cough and fever for three days. HISTORY: 71 year old woman.", "no"),
    ("Chest radiograph shows right lower lobe consolidation.", "pneumonia"),
]


@pytest.fixture(scope="module")
def examples(chat_tokenizer: Any) -> list[TokenizedChat]:
    out = []
    for note, answer in CHATS:
        messages = [
            {"role": "system", "content": "Answer with exactly one of: yes, no."},
            {"role": "user", "content": note},
            {"role": "assistant", "content": answer},
        ]
        out.append(tokenize_chat(messages, chat_tokenizer, max_length=256))
    return out


def batch(
    chat_tokenizer: Any, examples: list[TokenizedChat], layout: str = "padded"
) -> tuple[dict[str, Any], torch.Tensor]:
    """The examples as one padded or packed batch: model inputs without labels, and the labels."""
    pad = chat_tokenizer.pad_token_id
    if layout == "padded":
        inputs = PaddedCollator(pad_token_id=pad).collate(examples).model_inputs()
    else:
        width = sum(e["num_tokens"] for e in examples)
        inputs = PackedCollator(max_length=width, pad_token_id=pad).collate(examples).model_inputs()
    return inputs, inputs.pop("labels")


def test_positions_are_the_union_of_each_rows_targets() -> None:
    labels = torch.full((2, 8), IGNORE_INDEX)
    labels[0, 5:7] = 3  # row 0: tokens 5, 6 are targets -> logits at 4, 5
    labels[1, 3] = 4  # row 1: token 3 -> logits at 2
    labels[1, 0] = 9  # position 0 is never a target (nothing predicts it)
    assert target_positions(labels).tolist() == [2, 4, 5]
    assert target_positions(torch.full((1, 4), IGNORE_INDEX)).numel() == 0


@pytest.mark.parametrize("layout", ["padded", "packed"])
def test_loss_and_gradients_equal_the_full_logits_path(
    chat_tokenizer: Any, examples: list[TokenizedChat], layout: str
) -> None:
    inputs, labels = batch(chat_tokenizer, examples, layout)
    assert labels.shape[1] > 2 * len(target_positions(labels))  # the head is skipped somewhere
    model = tiny_llama(len(chat_tokenizer), "sdpa")

    full = model(**inputs, labels=labels).loss
    full.backward()
    full_grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad()

    out = model(**inputs, logits_to_keep=target_positions(labels))
    sparse = targeted_causal_lm_loss(out, labels)
    sparse.backward()

    torch.testing.assert_close(sparse, full, rtol=1e-5, atol=1e-6)
    for name, param in model.named_parameters():
        torch.testing.assert_close(param.grad, full_grads[name], rtol=1e-4, atol=1e-6, msg=name)


def test_num_items_in_batch_divides_the_sum_as_the_model_loss_does(
    chat_tokenizer: Any, examples: list[TokenizedChat]
) -> None:
    inputs, labels = batch(chat_tokenizer, examples)
    model = tiny_llama(len(chat_tokenizer), "sdpa")
    items = torch.tensor(37)  # e.g. the targets of a whole accumulated batch
    with torch.no_grad():
        full = model(**inputs, labels=labels, num_items_in_batch=items).loss
        out = model(**inputs, logits_to_keep=target_positions(labels))
    torch.testing.assert_close(targeted_causal_lm_loss(out, labels, items), full)


def test_lora_model_passes_the_positions_through(
    chat_tokenizer: Any, examples: list[TokenizedChat]
) -> None:
    inputs, labels = batch(chat_tokenizer, examples)
    config = LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "lm_head"])
    model = get_peft_model(tiny_llama(len(chat_tokenizer), "sdpa"), config)
    assert accepts_logits_to_keep(model)
    with torch.no_grad():
        full = model(**inputs, labels=labels).loss
        out = model(**inputs, logits_to_keep=target_positions(labels))
    assert out.logits.shape[1] == len(target_positions(labels))
    torch.testing.assert_close(targeted_causal_lm_loss(out, labels), full)


def test_logits_of_other_positions_are_refused(
    chat_tokenizer: Any, examples: list[TokenizedChat]
) -> None:
    inputs, labels = batch(chat_tokenizer, examples)
    model = tiny_llama(len(chat_tokenizer), "sdpa")
    with torch.no_grad():
        out = model(**inputs)  # every position
    with pytest.raises(ValueError, match="pass logits_to_keep=target_positions"):
        targeted_causal_lm_loss(out, labels)


def test_a_model_without_logits_to_keep_is_detected() -> None:
    class Plain(torch.nn.Module):
        def forward(self, input_ids: torch.Tensor) -> torch.Tensor:
            return input_ids

    assert not accepts_logits_to_keep(Plain())
