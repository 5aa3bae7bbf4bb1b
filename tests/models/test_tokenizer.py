"""Byte-level BPE tokenizer: round trips, atomic special tokens, the assistant mask."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from transformers import AutoTokenizer, PreTrainedTokenizerFast

from llm.models.chat_template import (
    BOS_TOKEN,
    EOS_TOKEN,
    EOT_TOKEN,
    HEADER_END,
    HEADER_START,
    PAD_TOKEN,
    SPECIAL_TOKENS,
)
from llm.models.tokenizer import MIN_VOCAB_SIZE, stop_token_ids, token_id, train_bpe_tokenizer


def test_round_trips_any_text(tokenizer: PreTrainedTokenizerFast) -> None:
    # Text the corpus never saw: unicode, units, symbols; byte-level BPE has no unknowns.
    text = "Pt c/o SOB x3d; SpO2 88% on RA → 2L NC. Température 38,5 °C ✓ 肺炎\n\ttab"
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    assert tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids
    assert tokenizer.decode(ids) == text


def test_generation_prompt_tokenizes_as_the_training_sequences_begin() -> None:
    # The model must see at generation time exactly the prefix it was trained on:
    # "<|end_header_id|>\n\n" at the end of a prompt gives the same tokens as before an
    # answer. Notes full of blank lines would teach plain byte-level BPE a "\n\n" token.
    notes = [f"HPI: note {i}.\n\nEXAM: normal.\n\nPLAN: home.\n\n" for i in range(200)]
    tokenizer = train_bpe_tokenizer(notes, vocab_size=400, model_max_length=512)
    messages = [{"role": "user", "content": "Readmitted within 30 days?\n\nLABS: none"}]
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    alone = tokenizer(prompt, add_special_tokens=False)["input_ids"]
    for answer in ("no", "yes", "sepsis", "heart_failure"):
        whole = tokenizer(prompt + answer, add_special_tokens=False)["input_ids"]
        assert whole[: len(alone)] == alone, answer
    newline = tokenizer("\n", add_special_tokens=False)["input_ids"]
    assert tokenizer("a\n\n\nb", add_special_tokens=False)["input_ids"][1:4] == newline * 3


def test_special_tokens_have_the_lowest_ids_and_stay_atomic(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    assert [token_id(tokenizer, t) for t in SPECIAL_TOKENS] == list(range(len(SPECIAL_TOKENS)))
    for token in SPECIAL_TOKENS:
        ids = tokenizer(f"fever{token}cough", add_special_tokens=False)["input_ids"]
        assert token_id(tokenizer, token) in ids
        assert tokenizer.decode(ids) == f"fever{token}cough"


def test_bos_pad_eos_and_stop_ids(tokenizer: PreTrainedTokenizerFast) -> None:
    assert tokenizer.bos_token == BOS_TOKEN
    assert tokenizer.eos_token == EOT_TOKEN
    assert tokenizer.pad_token == PAD_TOKEN
    assert stop_token_ids(tokenizer) == [
        token_id(tokenizer, EOT_TOKEN),
        token_id(tokenizer, EOS_TOKEN),
    ]
    # Like Llama-3: plain encoding starts with exactly one <|begin_of_text|>.
    ids = tokenizer("cough")["input_ids"]
    assert ids[0] == tokenizer.bos_token_id
    assert ids.count(tokenizer.bos_token_id) == 1


def test_vocab_size_is_bounded_and_checked() -> None:
    tok = train_bpe_tokenizer(["cough cough fever"] * 10, vocab_size=300, model_max_length=64)
    assert MIN_VOCAB_SIZE <= len(tok) <= 300
    with pytest.raises(ValueError, match="at least"):
        train_bpe_tokenizer(["x"], vocab_size=MIN_VOCAB_SIZE - 1, model_max_length=64)


def test_token_id_rejects_unknown_tokens(tokenizer: PreTrainedTokenizerFast) -> None:
    with pytest.raises(ValueError, match=re.escape("no <|python_tag|>")):
        token_id(tokenizer, "<|python_tag|>")


def _segment_ids(tokenizer: PreTrainedTokenizerFast, text: str) -> list[int]:
    return tokenizer(text, add_special_tokens=False)["input_ids"]


def test_assistant_mask_covers_exactly_assistant_content_and_eot(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    messages = [
        {"role": "system", "content": "You are a clinical assistant."},
        {"role": "user", "content": "Summarize: cough and fever for 3 days."},
        {"role": "assistant", "content": "Likely pneumonia."},
        {"role": "user", "content": "Plan?"},
        {"role": "assistant", "content": "Ceftriaxone and azithromycin."},
    ]
    out = tokenizer.apply_chat_template(
        messages, tokenize=True, return_dict=True, return_assistant_tokens_mask=True
    )
    # Expected stream, built segment by segment; special tokens split pre-tokenization,
    # so encoding the pieces separately gives the same ids as encoding the whole.
    expected: list[int] = [tokenizer.bos_token_id]
    assistant_positions: list[int] = []
    eot = token_id(tokenizer, EOT_TOKEN)
    for message in messages:
        expected += [token_id(tokenizer, HEADER_START)]
        expected += _segment_ids(tokenizer, message["role"])
        expected += [token_id(tokenizer, HEADER_END)]
        expected += _segment_ids(tokenizer, "\n\n")
        content = [*_segment_ids(tokenizer, message["content"]), eot]
        if message["role"] == "assistant":
            assistant_positions += list(range(len(expected), len(expected) + len(content)))
        expected += content
    assert out["input_ids"] == expected
    marked = [i for i, m in enumerate(out["assistant_masks"]) if m]
    assert marked == assistant_positions
    decoded = [tokenizer.decode([out["input_ids"][i]]) for i in marked]
    assert (
        "".join(decoded) == f"Likely pneumonia.{EOT_TOKEN}Ceftriaxone and azithromycin.{EOT_TOKEN}"
    )


def test_saved_tokenizer_loads_offline_with_template(
    tokenizer: PreTrainedTokenizerFast, tmp_path: Path
) -> None:
    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path, local_files_only=True)
    text = "EXAM: crackles over the right lower lung field."
    assert loaded(text)["input_ids"] == tokenizer(text)["input_ids"]
    assert loaded.chat_template == tokenizer.chat_template
    assert (loaded.bos_token, loaded.eos_token, loaded.pad_token) == (
        BOS_TOKEN,
        EOT_TOKEN,
        PAD_TOKEN,
    )
