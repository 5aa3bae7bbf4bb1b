"""A byte-level BPE tokenizer trained on the note corpus.

Byte-level BPE (the GPT-2 / Llama-3 family) can encode any string without an
unknown token, so clinical abbreviations, units and odd punctuation always
survive a round trip. The special tokens of :mod:`llm.models.chat_template`
are added as atomic tokens with the lowest ids, in their declared order, so
``<|begin_of_text|>`` is id 0 in every tokenizer this module trains.

Like Llama-3, encoding with ``add_special_tokens=True`` prepends
``<|begin_of_text|>``; the chat template writes its own and is tokenized without
special tokens, so a chat prompt starts with exactly one.
"""

from __future__ import annotations

from collections.abc import Iterable

from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import PreTrainedTokenizerBase, PreTrainedTokenizerFast

from llm.models.chat_template import (
    BOS_TOKEN,
    CHAT_TEMPLATE,
    EOS_TOKEN,
    EOT_TOKEN,
    PAD_TOKEN,
    SPECIAL_TOKENS,
)

# Tokens the trainer may not merge into: the 256 byte symbols always stay, so
# nothing is ever out of vocabulary.
MIN_VOCAB_SIZE = 256 + len(SPECIAL_TOKENS)


def train_bpe_tokenizer(
    texts: Iterable[str],
    *,
    vocab_size: int,
    model_max_length: int,
    min_frequency: int = 2,
) -> PreTrainedTokenizerFast:
    """Train a byte-level BPE tokenizer and wrap it for transformers.

    Args:
        texts: training documents (de-identified note texts).
        vocab_size: target vocabulary size, special tokens included. A small
            corpus may give fewer merges than asked for.
        model_max_length: longest sequence the model takes (its context size).
        min_frequency: a pair must occur this often to become a merge.

    Returns:
        A fast tokenizer with ``bos_token=<|begin_of_text|>``,
        ``eos_token=<|eot_id|>`` (where chat generation stops),
        ``pad_token=<|pad|>`` and the project's chat template.

    Raises:
        ValueError: ``vocab_size`` is too small to hold the byte alphabet and
            the special tokens.
    """
    if vocab_size < MIN_VOCAB_SIZE:
        raise ValueError(f"vocab_size must be at least {MIN_VOCAB_SIZE}, got {vocab_size}")
    backend = Tokenizer(models.BPE())
    # Each newline is a piece of its own. With the byte-level regex alone, "\n\n"
    # before text splits into two tokens but "\n\n" at the end of a string is one:
    # the generation prompt (ending "<|end_header_id|>\n\n") then differs from
    # every training sequence (where the answer follows), and greedy answers go wrong.
    backend.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex("\n"), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=True),
        ]
    )
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=list(SPECIAL_TOKENS),
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(texts, trainer=trainer)
    bos_id = backend.token_to_id(BOS_TOKEN)
    # trim_offsets=False keeps character offsets exact, which the assistant
    # mask of apply_chat_template is computed from.
    backend.post_processor = processors.Sequence(
        [
            processors.ByteLevel(trim_offsets=False),
            processors.TemplateProcessing(
                single=f"{BOS_TOKEN} $A",
                pair=f"{BOS_TOKEN} $A $B",
                special_tokens=[(BOS_TOKEN, bos_id)],
            ),
        ]
    )
    extra = [t for t in SPECIAL_TOKENS if t not in (BOS_TOKEN, EOT_TOKEN, PAD_TOKEN)]
    return PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token=BOS_TOKEN,
        eos_token=EOT_TOKEN,
        pad_token=PAD_TOKEN,
        extra_special_tokens=extra,
        model_max_length=model_max_length,
        padding_side="right",
        chat_template=CHAT_TEMPLATE,
        clean_up_tokenization_spaces=False,
    )


def token_id(tokenizer: PreTrainedTokenizerBase, token: str) -> int:
    """The id of one vocabulary token.

    Raises:
        ValueError: the token is not in the tokenizer's vocabulary.
    """
    found = tokenizer.convert_tokens_to_ids(token)
    if not isinstance(found, int) or found == tokenizer.unk_token_id:
        raise ValueError(f"tokenizer has no {token} token")
    return found


def stop_token_ids(tokenizer: PreTrainedTokenizerBase) -> list[int]:
    """Ids generation stops at: end of a chat turn, then end of a document.

    Args:
        tokenizer: a tokenizer from :func:`train_bpe_tokenizer` (or any with
            both tokens in its vocabulary).

    Returns:
        ``[id of <|eot_id|>, id of <|end_of_text|>]``.

    Raises:
        ValueError: either token is missing from the vocabulary.
    """
    return [token_id(tokenizer, EOT_TOKEN), token_id(tokenizer, EOS_TOKEN)]
