"""Chat templates of imported checkpoints, made ready for assistant-only loss.

Assistant-only loss (:mod:`llm.models.chat_tokenize`) needs a chat template whose
assistant turns sit in ``{% generation %}`` blocks: transformers then marks
exactly those tokens in ``apply_chat_template(..., return_assistant_tokens_mask=True)``.
The templates real checkpoints ship rarely have them. This module rewrites the
templates it knows (ChatML, as in SmolLM2 and Qwen) so that each assistant turn's
content and its end-of-turn token are in a generation block, and keeps the
rewrite only when it renders every probe conversation to the very same text as
the original: the model sees exactly the prompts it was trained with.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

GENERATION_TAG = "{% generation %}"


# SmolLM2's ChatML turn: role line, content, end-of-turn, newline. The newline
# after <|im_end|> is outside the generation block: the model stops at <|im_end|>.
# Templates spell the newline inside their Jinja strings either as the character
# itself (SmolLM2's tokenizer_config.json) or as the escape backslash-n.
def _chatml_turns(newline: str) -> tuple[str, str]:
    turn = (
        f"{{{{'<|im_start|>' + message['role'] + '{newline}' + message['content'] "
        f"+ '<|im_end|>' + '{newline}'}}}}"
    )
    marked = (
        "{%- if message['role'] == 'assistant' %}"
        f"{{{{'<|im_start|>assistant{newline}'}}}}"
        "{% generation %}{{ message['content'] + '<|im_end|>' }}{% endgeneration %}"
        f"{{{{'{newline}'}}}}"
        "{%- else %}" + turn + "{%- endif %}"
    )
    return turn, marked


KNOWN_TURNS = (_chatml_turns("\n"), _chatml_turns("\\n"))

# Conversations both templates must render identically: with and without a
# system turn, several assistant turns, leading/trailing spaces and newlines.
PROBES: tuple[list[dict[str, str]], ...] = (
    [
        {"role": "system", "content": "You answer clinical questions."},
        {"role": "user", "content": "Note: denies chest pain.\nLabs: troponin 0.01"},
        {"role": "assistant", "content": "no"},
        {"role": "user", "content": " And the rhythm? "},
        {"role": "assistant", "content": "atrial fibrillation\n"},
    ],
    [
        {"role": "user", "content": "Summarise."},
        {"role": "assistant", "content": "Admitted for sepsis; improved on antibiotics."},
    ],
)


@dataclass(frozen=True)
class TrainingTemplate:
    """The outcome of :func:`training_template`.

    Attributes:
        template: the template to save with the model (the original when no
            rewrite applied).
        marked: whether assistant turns are in generation blocks (the template
            supports assistant-only loss).
        how: ``"original"`` (already marked), ``"chatml"`` (rewritten, renders
            identically) or ``"none"`` (unknown format; left as it was).
    """

    template: str
    marked: bool
    how: str


def training_template(tokenizer: Any) -> TrainingTemplate:
    """The tokenizer's chat template with generation blocks around assistant turns.

    Args:
        tokenizer: a tokenizer with a ``chat_template``.

    Returns:
        The template to save and how it was obtained. The rewrite is kept only
        when it renders every probe conversation (with and without a generation
        prompt) to the same text as the original.
    """
    original = tokenizer.chat_template
    if not isinstance(original, str) or not original:
        return TrainingTemplate(template=original or "", marked=False, how="none")
    if GENERATION_TAG in original:
        return TrainingTemplate(template=original, marked=True, how="original")
    for turn, marked in KNOWN_TURNS:
        if turn in original:
            candidate = original.replace(turn, marked)
            if _renders_identically(tokenizer, original, candidate):
                return TrainingTemplate(template=candidate, marked=True, how="chatml")
    return TrainingTemplate(template=original, marked=False, how="none")


def _renders_identically(tokenizer: Any, original: str, candidate: str) -> bool:
    for messages in PROBES:
        for add_generation_prompt in (False, True):
            texts = [
                tokenizer.apply_chat_template(
                    messages,
                    chat_template=template,
                    tokenize=False,
                    add_generation_prompt=add_generation_prompt,
                )
                for template in (original, candidate)
            ]
            if texts[0] != texts[1]:
                return False
    return True
