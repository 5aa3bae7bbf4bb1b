"""Packing: a packed batch gives the same logits, loss and gradients as its examples alone."""

from __future__ import annotations

from typing import Any

import pytest
import torch
import torch.nn.functional as F
from datasets import Dataset

from llm.errors import BadInputError
from llm.models.chat_tokenize import IGNORE_INDEX, TokenizedChat, tokenize_chat
from llm.train.attention import SDPA_VARLEN
from llm.train.packing import (
    PackedCollator,
    PackingStrategy,
    PaddedCollator,
    check_model_for_packing,
    pack_dataset,
    plan_packing,
)
from tests.train.conftest import tiny_llama

SYSTEM = "You are a clinical assistant. Answer with exactly one of: yes, no."
NOTES = [
    "CHIEF COMPLAINT: cough and fever for three days.",
    "HISTORY: 71 year old woman with COPD. Labs: WBC 14.2 K/uL, lactate 2.1 mmol/L.",
    "Chest radiograph shows right lower lobe consolidation consistent with pneumonia.",
    "Vitals: heart rate 104, temperature 38.4 C. " * 6,
    "The patient was admitted, treated with antibiotics and discharged home in stable "
    "condition. Summarize the brief hospital course.",
]
ANSWERS = ["yes", "no", "The patient was admitted with pneumonia.", "no", "yes"]


@pytest.fixture(scope="module")
def examples(chat_tokenizer: Any) -> list[TokenizedChat]:
    """Five tokenized chats of different lengths."""
    out = []
    for note, answer in zip(NOTES, ANSWERS, strict=True):
        messages = [
            {"role": "system", "content": SYSTEM},
            {"role": "user", "content": note},
            {"role": "assistant", "content": answer},
        ]
        out.append(tokenize_chat(messages, chat_tokenizer, max_length=256))
    assert len({e["num_tokens"] for e in out}) > 3
    return out


def packer(
    chat_tokenizer: Any, examples: list[TokenizedChat], attn: str = "sdpa"
) -> PackedCollator:
    # rows of about 2.5 examples, so that most rows hold several examples and padding
    width = int(sum(e["num_tokens"] for e in examples) / 2)
    return PackedCollator(
        max_length=width,
        pad_token_id=chat_tokenizer.pad_token_id,
        flash_attn_kwargs=attn == SDPA_VARLEN,  # it reads example bounds from cu_seq_lens
    )


def token_losses(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Per-token loss of each shifted label (0 where ignored), shape (rows, width - 1)."""
    return F.cross_entropy(
        logits[:, :-1].transpose(1, 2), labels[:, 1:], ignore_index=IGNORE_INDEX, reduction="none"
    )


def separate_loss_sum(model: Any, examples: list[TokenizedChat]) -> tuple[torch.Tensor, int]:
    total = torch.zeros(())
    count = 0
    for e in examples:
        ids = torch.tensor([e["input_ids"]])
        labels = torch.tensor([e["labels"]])
        total = total + token_losses(model(input_ids=ids).logits, labels).sum()
        count += int((labels[:, 1:] != IGNORE_INDEX).sum())
    return total, count


# --- planning -------------------------------------------------------------------------------


def test_best_fit_plan_on_a_known_case() -> None:
    assert plan_packing([5, 4, 3, 3, 1], 8) == [[0, 2], [1, 3, 4]]
    assert plan_packing([5, 4, 3, 3, 1], 8, strategy="sequential") == [[0], [1, 2], [3, 4]]


def test_plans_use_every_example_once_and_respect_capacity() -> None:
    gen = torch.Generator().manual_seed(0)
    lengths = torch.randint(1, 300, (500,), generator=gen).tolist()
    strategies: list[PackingStrategy] = ["best_fit", "sequential"]
    for strategy in strategies:
        rows = plan_packing(lengths, 512, strategy=strategy)
        assert sorted(i for row in rows for i in row) == list(range(500))
        assert all(sum(lengths[i] for i in row) <= 512 for row in rows)
    assert len(plan_packing(lengths, 512)) < len(plan_packing(lengths, 512, strategy="sequential"))


def test_too_long_example_is_refused() -> None:
    with pytest.raises(BadInputError, match="example 1 has 9 tokens"):
        plan_packing([3, 9], 8)


# --- batch structure ------------------------------------------------------------------------


def test_packed_rows_restart_positions_and_mask_each_first_label(
    chat_tokenizer: Any, examples: list[TokenizedChat]
) -> None:
    batch = packer(chat_tokenizer, examples).collate(examples)
    assert batch.input_ids.shape[0] >= 2
    assert any(len(lens) > 1 for lens in batch.seq_lens)
    for r, lens in enumerate(batch.seq_lens):
        at = 0
        for n in lens:
            assert batch.position_ids[r, at : at + n].tolist() == list(range(n))
            assert batch.labels[r, at] == IGNORE_INDEX
            at += n
        assert (batch.labels[r, at:] == IGNORE_INDEX).all()
        assert (batch.input_ids[r, at:] == chat_tokenizer.pad_token_id).all()
    # every example's tokens appear exactly once
    lengths = sorted(n for lens in batch.seq_lens for n in lens)
    assert lengths == sorted(e["num_tokens"] for e in examples)


def test_token_accounting(chat_tokenizer: Any, examples: list[TokenizedChat]) -> None:
    real = sum(e["num_tokens"] for e in examples)
    trained = sum(e["num_label_tokens"] for e in examples)
    packed = packer(chat_tokenizer, examples).collate(examples)
    padded = PaddedCollator(pad_token_id=chat_tokenizer.pad_token_id).collate(examples)
    assert packed.num_real_tokens == padded.num_real_tokens == real
    assert packed.num_label_tokens == padded.num_label_tokens == trained
    assert padded.num_slots == len(examples) * max(e["num_tokens"] for e in examples)
    assert packed.num_slots < padded.num_slots
    assert int(padded.attention_mask.sum()) == real


def test_cu_seqlens_cover_the_flattened_batch(
    chat_tokenizer: Any, examples: list[TokenizedChat]
) -> None:
    collator = PackedCollator(
        max_length=packer(chat_tokenizer, examples).max_length,
        pad_token_id=chat_tokenizer.pad_token_id,
        flash_attn_kwargs=True,
    )
    batch = collator.collate(examples)
    cu = batch.cu_seqlens
    assert cu.dtype == torch.int32 and cu[0] == 0 and cu[-1] == batch.num_slots
    # each block starts where position_ids restart
    starts = (batch.position_ids.flatten() == 0).nonzero().flatten().tolist()
    assert cu[:-1].tolist() == starts
    inputs = collator(examples)
    assert inputs["max_length_q"] == int((cu[1:] - cu[:-1]).max())
    assert "attention_mask" not in inputs


# --- equivalence with the examples run one by one --------------------------------------------


@pytest.mark.parametrize("attn", ["sdpa", "eager", SDPA_VARLEN])
def test_packed_logits_equal_each_example_alone(
    chat_tokenizer: Any, examples: list[TokenizedChat], attn: str
) -> None:
    model = tiny_llama(len(chat_tokenizer), attn)
    collator = packer(chat_tokenizer, examples, attn)
    collator.check_model(model)
    batch = collator.collate(examples)
    with torch.no_grad():
        logits = model(**batch.model_inputs()).logits
        for r, lens in enumerate(batch.seq_lens):
            at = 0
            for n in lens:
                alone = model(input_ids=batch.input_ids[r : r + 1, at : at + n]).logits
                torch.testing.assert_close(
                    logits[r : r + 1, at : at + n], alone, rtol=1e-5, atol=1e-5
                )
                at += n


@pytest.mark.parametrize("attn", ["sdpa", "eager", SDPA_VARLEN])
def test_packed_loss_equals_separate_loss(
    chat_tokenizer: Any, examples: list[TokenizedChat], attn: str
) -> None:
    model = tiny_llama(len(chat_tokenizer), attn)
    batch = packer(chat_tokenizer, examples, attn).collate(examples)
    with torch.no_grad():
        out = model(**batch.model_inputs())
        packed_sum = token_losses(out.logits, batch.labels).sum()
        separate_sum, count = separate_loss_sum(model, examples)
        if attn == SDPA_VARLEN:  # packed batches only: compare padded rows under sdpa
            model.set_attn_implementation("sdpa")
        padded = PaddedCollator(pad_token_id=chat_tokenizer.pad_token_id)(examples)
        padded_loss = model(**padded).loss
    assert count == batch.num_label_tokens
    torch.testing.assert_close(packed_sum, separate_sum, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(out.loss, separate_sum / count, rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(out.loss, padded_loss, rtol=1e-5, atol=1e-6)


def test_boundary_labels_are_masked_when_every_token_is_trained(
    chat_tokenizer: Any, examples: list[TokenizedChat]
) -> None:
    # labels == input_ids, first token included: only the collator keeps example k+1's
    # first token from being trained as the prediction of example k's last token
    full = [{"input_ids": e["input_ids"], "labels": e["input_ids"]} for e in examples]
    model = tiny_llama(len(chat_tokenizer), "sdpa")
    batch = packer(chat_tokenizer, examples).collate(full)
    with torch.no_grad():
        packed_loss = model(**batch.model_inputs()).loss
        separate = [
            model(input_ids=torch.tensor([f["input_ids"]]), labels=torch.tensor([f["labels"]]))
            for f in full
        ]
    counts = [len(f["input_ids"]) - 1 for f in full]
    expected = sum(float(o.loss) * n for o, n in zip(separate, counts, strict=True)) / sum(counts)
    assert batch.num_label_tokens == sum(counts)
    torch.testing.assert_close(float(packed_loss), expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("attn", ["sdpa", SDPA_VARLEN])
def test_packed_gradients_equal_separate_gradients(
    chat_tokenizer: Any, examples: list[TokenizedChat], attn: str
) -> None:
    model = tiny_llama(len(chat_tokenizer), attn)
    batch = packer(chat_tokenizer, examples, attn).collate(examples)
    model(**batch.model_inputs()).loss.backward()
    packed = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad()
    total, count = separate_loss_sum(model, examples)
    (total / count).backward()
    for name, p in model.named_parameters():
        torch.testing.assert_close(packed[name], p.grad, rtol=1e-4, atol=1e-6, msg=name)


# --- negative controls: the equivalence tests can fail -----------------------------------------


@pytest.mark.parametrize("attn", ["sdpa", "eager"])
def test_packing_without_position_restarts_gives_a_different_loss(
    chat_tokenizer: Any, examples: list[TokenizedChat], attn: str
) -> None:
    model = tiny_llama(len(chat_tokenizer), attn)
    batch = packer(chat_tokenizer, examples).collate(examples)
    naive = batch.model_inputs()
    naive["position_ids"] = torch.arange(batch.input_ids.shape[1]).expand_as(batch.input_ids)
    with torch.no_grad():
        separate_sum, count = separate_loss_sum(model, examples)
        naive_loss = model(**naive).loss
    assert abs(float(naive_loss) - float(separate_sum / count)) > 1e-3


def test_cache_on_leaks_across_packed_examples_and_is_refused(
    chat_tokenizer: Any, examples: list[TokenizedChat]
) -> None:
    model = tiny_llama(len(chat_tokenizer), "sdpa", use_cache=True)
    collator = packer(chat_tokenizer, examples)
    batch = collator.collate(examples)
    with torch.no_grad():
        separate_sum, count = separate_loss_sum(model, examples)
        leaky_loss = model(**batch.model_inputs()).loss
    # transformers skips the packed-sequence mask when a cache exists: a real leak
    assert abs(float(leaky_loss) - float(separate_sum / count)) > 1e-3
    with pytest.raises(BadInputError, match="use_cache = False"):
        collator.check_model(model)


def test_flash_attention_needs_varlen_kwargs(chat_tokenizer: Any) -> None:
    model = tiny_llama(len(chat_tokenizer), "sdpa")
    model.config._attn_implementation = "flash_attention_2"  # config check only; no kernel runs
    with pytest.raises(BadInputError, match="flash_attn_kwargs=True"):
        check_model_for_packing(model)
    check_model_for_packing(model, flash_attn_kwargs=True)


# --- pre-packed datasets and images -----------------------------------------------------------


def test_pack_dataset_rows_stay_whole_and_keep_the_loss(
    chat_tokenizer: Any, examples: list[TokenizedChat]
) -> None:
    width = packer(chat_tokenizer, examples).max_length
    rows = pack_dataset(Dataset.from_list([dict(e) for e in examples]), max_length=width)
    assert sorted(i for r in rows["example_indices"] for i in r) == list(range(len(examples)))
    collator = PackedCollator(max_length=width, pad_token_id=chat_tokenizer.pad_token_id)
    batch = collator.collate(list(rows))
    assert batch.input_ids.shape[0] == len(rows)
    assert batch.seq_lens == [list(r) for r in rows["seq_lens"]]
    model = tiny_llama(len(chat_tokenizer), "sdpa")
    with torch.no_grad():
        separate_sum, count = separate_loss_sum(model, examples)
        torch.testing.assert_close(
            model(**batch.model_inputs()).loss, separate_sum / count, rtol=1e-5, atol=1e-6
        )


def test_pixel_values_follow_the_packed_order(chat_tokenizer: Any) -> None:
    features = [
        {"input_ids": [1] * n, "labels": [IGNORE_INDEX] * n, "pixel_values": torch.full((1, 3), n)}
        for n in (3, 7, 5)
    ]
    batch = PackedCollator(max_length=8, pad_token_id=0).collate(features)
    order = [n for lens in batch.seq_lens for n in lens]
    assert batch.pixel_values is not None
    assert batch.pixel_values[:, 0].tolist() == order


def test_bad_features_are_refused() -> None:
    collator = PackedCollator(max_length=8, pad_token_id=0)
    with pytest.raises(BadInputError, match="feature 0: missing 'labels'"):
        collator.collate([{"input_ids": [1, 2]}])
    with pytest.raises(BadInputError, match="input_ids has 2 tokens, labels 1"):
        collator.collate([{"input_ids": [1, 2], "labels": [1]}])
    with pytest.raises(BadInputError, match="use PackedCollator"):
        PaddedCollator(pad_token_id=0).collate(
            [{"input_ids": [1, 2, 3], "labels": [1, 2, 3], "seq_lens": [1, 2]}]
        )
