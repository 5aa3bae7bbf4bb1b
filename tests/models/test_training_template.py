"""Templates of real checkpoints get generation blocks only where their output stays the same."""

from __future__ import annotations

from typing import Any

import pytest
from transformers import PreTrainedTokenizerFast

from llm.models import training_template as training_template_module
from llm.models.chat_template import CHAT_TEMPLATE
from llm.models.training_template import PROBES, training_template

# SmolLM2-135M-Instruct's template, as its GGUF file and tokenizer_config.json hold it.
SMOLLM2_TEMPLATE = (
    "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}"
    "{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging "
    "Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + "
    "message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}"
    "{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def _tokenizer(tokenizer: PreTrainedTokenizerFast, template: str) -> Any:
    tok = tokenizer.__class__(tokenizer_object=tokenizer.backend_tokenizer)
    tok.chat_template = template
    return tok


def test_chatml_gets_generation_blocks_and_renders_the_same(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    tok = _tokenizer(tokenizer, SMOLLM2_TEMPLATE)
    result = training_template(tok)
    assert (result.marked, result.how) == (True, "chatml")
    assert "{% generation %}" in result.template
    for messages in PROBES:
        for prompt in (False, True):
            assert tok.apply_chat_template(
                messages, tokenize=False, add_generation_prompt=prompt
            ) == tok.apply_chat_template(
                messages,
                chat_template=result.template,
                tokenize=False,
                add_generation_prompt=prompt,
            )


def test_chatml_with_escaped_newlines_is_recognised(tokenizer: PreTrainedTokenizerFast) -> None:
    escaped = SMOLLM2_TEMPLATE.replace("\n", "\\n")
    result = training_template(_tokenizer(tokenizer, escaped))
    assert (result.marked, result.how) == (True, "chatml")


def test_a_marked_template_is_kept_and_an_unknown_one_left_alone(
    tokenizer: PreTrainedTokenizerFast,
) -> None:
    kept = training_template(_tokenizer(tokenizer, CHAT_TEMPLATE))
    assert (kept.template, kept.marked, kept.how) == (CHAT_TEMPLATE, True, "original")
    unknown = "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}\n{% endfor %}"
    left = training_template(_tokenizer(tokenizer, unknown))
    assert (left.template, left.marked, left.how) == (unknown, False, "none")


def test_a_rewrite_that_would_change_the_text_is_refused(
    tokenizer: PreTrainedTokenizerFast, monkeypatch: pytest.MonkeyPatch
) -> None:
    turn, marked = training_template_module.KNOWN_TURNS[0]
    # a faulty rewrite that drops the newline after each assistant turn
    faulty = marked.replace("{% endgeneration %}{{'\n'}}", "{% endgeneration %}")
    assert faulty != marked
    monkeypatch.setattr(training_template_module, "KNOWN_TURNS", ((turn, faulty),))
    result = training_template(_tokenizer(tokenizer, SMOLLM2_TEMPLATE))
    assert (result.template, result.marked, result.how) == (SMOLLM2_TEMPLATE, False, "none")
