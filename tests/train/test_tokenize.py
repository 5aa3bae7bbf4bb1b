"""Dataset tokenization: rejected rows counted and dropped, bad rows named."""

from __future__ import annotations

from typing import Any

import pytest
from datasets import Dataset

from llm.errors import BadInputError
from llm.models.chat_tokenize import ANSWER_DOES_NOT_FIT
from llm.train.tokenize import tokenize_dataset
from tests.models.test_chat_tokenize import three_turns


def test_tokenize_dataset_counts_and_drops_rejected_rows(chat_tokenizer: Any) -> None:
    long_answer = " ".join(["The patient was admitted with pneumonia."] * 20)
    rows = [
        {"id": "a", "messages": three_turns("yes")},
        {"id": "b", "messages": three_turns(long_answer)},
        {"id": "c", "messages": three_turns("no")},
    ]
    kept, stats = tokenize_dataset(Dataset.from_list(rows), chat_tokenizer, max_length=60)
    assert (stats.read, stats.used, stats.rejected) == (3, 2, {ANSWER_DOES_NOT_FIT: 1})
    assert stats.read == stats.used + stats.rejected_total
    assert kept["id"] == ["a", "c"]
    assert stats.tokens == sum(kept["num_tokens"])
    assert stats.label_tokens == sum(kept["num_label_tokens"])
    assert stats.summary().startswith("read 3 = used 2 + rejected 1 (answer_does_not_fit: 1)")


def test_tokenize_dataset_names_the_bad_row(chat_tokenizer: Any) -> None:
    rows = [
        {"id": "a", "messages": three_turns()},
        {"id": "b", "messages": [{"role": "nurse", "content": "x"}]},
    ]
    with pytest.raises(BadInputError, match=r"train row 1 \(id b\): messages\[0\]\.role"):
        tokenize_dataset(Dataset.from_list(rows), chat_tokenizer, max_length=512, split="train")
