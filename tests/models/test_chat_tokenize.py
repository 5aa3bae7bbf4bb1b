"""Chat tokenization: exact assistant-only label masks, truncation policy."""

from __future__ import annotations

import copy
import re
from typing import Any

import pytest

from llm.errors import BadInputError
from llm.models.chat_template import BOS_TOKEN, EOT_TOKEN, HEADER_END, HEADER_START, IMAGE_TOKEN
from llm.models.chat_tokenize import (
    ANSWER_DOES_NOT_FIT,
    IGNORE_INDEX,
    NO_ASSISTANT_TOKENS,
    OK,
    TOO_LONG,
    TRUNCATED,
    tokenize_chat,
)
from tests.real_model import smollm2  # noqa: F401  (fixture)

SYSTEM = "You are a clinical assistant. Answer with exactly one of: yes, no."
NOTE = "CHIEF COMPLAINT: cough and fever for three days. HISTORY: 71 year old woman with COPD."
QUESTION = "Will the patient be readmitted within 30 days?"


def three_turns(answer: str = "no") -> list[dict[str, Any]]:
    return [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"{NOTE}\n{QUESTION}"},
        {"role": "assistant", "content": answer},
    ]


def expected_tokens(tok: Any, messages: list[dict[str, Any]]) -> tuple[list[int], list[int]]:
    """Ids and assistant-only labels built piece by piece, independently of the template."""

    def enc(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    special = tok.convert_tokens_to_ids
    ids = [special(BOS_TOKEN)]
    labels = [IGNORE_INDEX]
    for m in messages:
        header = [special(HEADER_START), *enc(m["role"]), special(HEADER_END), *enc("\n\n")]
        body = [*enc(m["content"].strip()), special(EOT_TOKEN)]
        ids += header + body
        labels += [IGNORE_INDEX] * len(header)
        labels += body if m["role"] == "assistant" else [IGNORE_INDEX] * len(body)
    return ids, labels


def test_three_message_example_trains_exactly_the_answer_and_its_eot(chat_tokenizer: Any) -> None:
    messages = three_turns("no")
    out = tokenize_chat(messages, chat_tokenizer, max_length=512)
    ids, labels = expected_tokens(chat_tokenizer, messages)
    assert out["status"] == OK
    assert out["input_ids"] == ids
    assert out["labels"] == labels
    answer_span = [
        *chat_tokenizer("no", add_special_tokens=False)["input_ids"],
        chat_tokenizer.convert_tokens_to_ids(EOT_TOKEN),
    ]
    trained = [lab for lab in out["labels"] if lab != IGNORE_INDEX]
    assert trained == answer_span
    assert out["labels"][-len(answer_span) :] == answer_span  # the final eot is trained
    assert out["num_label_tokens"] == len(answer_span)
    assert out["num_tokens"] == len(ids)


def test_multi_turn_trains_each_assistant_turn_and_masks_users(chat_tokenizer: Any) -> None:
    messages = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": NOTE},
        {"role": "assistant", "content": "Chest radiograph shows consolidation."},
        {"role": "user", "content": QUESTION},
        {"role": "assistant", "content": "yes"},
    ]
    out = tokenize_chat(messages, chat_tokenizer, max_length=512)
    ids, labels = expected_tokens(chat_tokenizer, messages)
    assert out["input_ids"] == ids
    assert out["labels"] == labels
    eot = chat_tokenizer.convert_tokens_to_ids(EOT_TOKEN)
    trained_eots = [i for i, lab in enumerate(out["labels"]) if lab == eot]
    all_eots = [i for i, t in enumerate(out["input_ids"]) if t == eot]
    assert len(all_eots) == 5
    assert trained_eots == [all_eots[2], all_eots[4]]  # the two assistant turns' eots only


def test_full_loss_trains_every_token_but_the_first(chat_tokenizer: Any) -> None:
    out = tokenize_chat(three_turns(), chat_tokenizer, max_length=512, assistant_only_loss=False)
    assert out["labels"][0] == IGNORE_INDEX
    assert out["labels"][1:] == out["input_ids"][1:]


def test_list_of_parts_content_tokenizes_like_the_string(chat_tokenizer: Any) -> None:
    as_parts = [
        {"role": "system", "content": [{"type": "text", "text": SYSTEM, "image": None}]},
        {
            "role": "user",
            "content": [
                {"type": "image", "text": None, "image": "assets/cxr.png"},
                {"type": "text", "text": "Chest radiograph.", "image": None},
            ],
        },
        {"role": "assistant", "content": [{"type": "text", "text": "pneumonia", "image": None}]},
    ]
    as_text = [
        {"role": "system", "content": SYSTEM},
        {"role": "user", "content": f"{IMAGE_TOKEN}Chest radiograph."},
        {"role": "assistant", "content": "pneumonia"},
    ]
    parts = tokenize_chat(as_parts, chat_tokenizer, max_length=512)
    text = tokenize_chat(as_text, chat_tokenizer, max_length=512)
    assert parts["input_ids"] == text["input_ids"]
    assert parts["labels"] == text["labels"]
    image_id = chat_tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert parts["input_ids"].count(image_id) == 1


def test_image_seq_length_expands_placeholders_untrained(chat_tokenizer: Any) -> None:
    messages: list[dict[str, Any]] = [
        {
            "role": "user",
            "content": [
                {"type": "image", "text": None, "image": "a.png"},
                {"type": "text", "text": "Describe.", "image": None},
            ],
        },
        {"role": "assistant", "content": "pneumonia"},
    ]
    one = tokenize_chat(messages, chat_tokenizer, max_length=512)
    four = tokenize_chat(messages, chat_tokenizer, max_length=512, image_seq_length=4)
    image_id = chat_tokenizer.convert_tokens_to_ids(IMAGE_TOKEN)
    assert four["input_ids"].count(image_id) == 4
    assert four["num_tokens"] == one["num_tokens"] + 3
    assert [lab for lab in four["labels"] if lab != IGNORE_INDEX] == [
        lab for lab in one["labels"] if lab != IGNORE_INDEX
    ]


def test_too_long_example_cuts_the_start_of_the_user_text(chat_tokenizer: Any) -> None:
    messages = three_turns("yes")
    full = tokenize_chat(messages, chat_tokenizer, max_length=512)
    limit = full["num_tokens"] - 10
    out = tokenize_chat(messages, chat_tokenizer, max_length=limit)
    assert out["status"] == TRUNCATED
    assert out["num_tokens"] <= limit
    assert out["prompt_tokens_removed"] >= 10
    # the answer and its eot are intact
    trained = [lab for lab in out["labels"] if lab != IGNORE_INDEX]
    assert trained == [lab for lab in full["labels"] if lab != IGNORE_INDEX]
    text = chat_tokenizer.decode(out["input_ids"])
    assert SYSTEM in text  # the instruction is never cut
    assert QUESTION in text  # the end of the user turn survives
    assert "CHIEF COMPLAINT" not in text  # its start went


def test_answer_that_cannot_fit_is_rejected_not_cut(chat_tokenizer: Any) -> None:
    long_answer = " ".join(["The patient was admitted with pneumonia."] * 20)
    out = tokenize_chat(three_turns(long_answer), chat_tokenizer, max_length=60)
    assert out["status"] == ANSWER_DOES_NOT_FIT
    assert out["input_ids"] == [] and out["labels"] == []


def test_drop_policy_rejects_too_long(chat_tokenizer: Any) -> None:
    out = tokenize_chat(three_turns(), chat_tokenizer, max_length=20, truncation="drop")
    assert out["status"] == TOO_LONG


def test_example_without_assistant_turn_is_rejected(chat_tokenizer: Any) -> None:
    messages = [{"role": "user", "content": QUESTION}]
    assert tokenize_chat(messages, chat_tokenizer, max_length=64)["status"] == NO_ASSISTANT_TOKENS


@pytest.mark.parametrize(
    ("messages", "field"),
    [
        ([], "messages"),
        ([{"role": "doctor", "content": "x"}], "messages[0].role"),
        ([{"role": "user", "content": 3}], "messages[0].content"),
    ],
)
def test_malformed_messages_name_the_field(
    chat_tokenizer: Any, messages: list[dict[str, Any]], field: str
) -> None:
    with pytest.raises(BadInputError, match="train row 4: " + re.escape(field) + ":"):
        tokenize_chat(messages, chat_tokenizer, max_length=64, where="train row 4")


def test_template_without_generation_markers_is_refused(chat_tokenizer: Any) -> None:
    plain = copy.deepcopy(chat_tokenizer)
    plain.chat_template = (
        "{{ bos_token }}{% for m in messages %}{{ m['role'] + ': ' + m['content'] }}"
        "<|eot_id|>{% endfor %}"
    )
    with pytest.raises(BadInputError, match="generation"):
        tokenize_chat(three_turns(), plain, max_length=512)


@pytest.mark.slow
def test_smollm2_chatml_trains_exactly_each_answer_and_its_im_end(smollm2: Any) -> None:  # noqa: F811
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(smollm2, local_files_only=True)
    messages = [
        *three_turns("no"),
        {"role": "user", "content": "And the primary diagnosis?"},
        {"role": "assistant", "content": "heart failure"},
    ]
    out = tokenize_chat(messages, tok, max_length=512)
    assert out["status"] == OK

    def encode(text: str) -> list[int]:
        return list(tok(text, add_special_tokens=False)["input_ids"])

    full = tok.apply_chat_template(messages, tokenize=False)
    assert out["input_ids"] == encode(full)
    # Each answer's span, found from text prefixes, independently of the template's tags.
    expected = [IGNORE_INDEX] * len(out["input_ids"])
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        start, end = len(encode(before)), len(encode(before + message["content"] + "<|im_end|>"))
        assert tok.decode(out["input_ids"][start:end]) == message["content"] + "<|im_end|>"
        expected[start:end] = out["input_ids"][start:end]
    assert out["labels"] == expected
    trained = [t for t in out["labels"] if t != IGNORE_INDEX]
    assert tok.decode(trained) == "no<|im_end|>heart failure<|im_end|>"
    # the newline after <|im_end|> and the next turn's header are not trained
    assert out["labels"][-1] == IGNORE_INDEX
