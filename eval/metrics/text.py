"""ROUGE-L for free-text answers, with no downloads and no nltk data.

Tokens follow the ``rouge_score`` package's default tokenizer: lower-cased runs
of ``[a-z0-9]`` (punctuation and non-ASCII letters split tokens and are
dropped), no stemming. The longest common subsequence is computed with the
bit-parallel algorithm of Hyyrö (2004), one big-integer update per token of the
shorter text, so long clinical answers stay cheap.
"""

from __future__ import annotations

import re

_TOKEN = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-cased alphanumeric tokens of ``text``."""
    return _TOKEN.findall(text.lower())


def lcs_length(a: list[str], b: list[str]) -> int:
    """Length of the longest common subsequence of two token lists."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    masks: dict[str, int] = {}
    for i, token in enumerate(a):
        masks[token] = masks.get(token, 0) | (1 << i)
    full = (1 << len(a)) - 1
    v = full
    for token in b:
        u = v & masks.get(token, 0)
        v = ((v + u) | (v - u)) & full
    # every zero bit left in v marks one matched position of the LCS
    return len(a) - v.bit_count()


def rouge_l_f1(prediction: str, reference: str) -> float:
    """ROUGE-L F-measure (beta = 1) of ``prediction`` against ``reference``.

    Returns:
        ``2PR / (P + R)`` with ``P = lcs / len(prediction)`` and
        ``R = lcs / len(reference)`` in tokens; 0 when either text has no tokens
        or they share none.
    """
    pred, ref = tokenize(prediction), tokenize(reference)
    lcs = lcs_length(pred, ref)
    if lcs == 0:
        return 0.0
    precision, recall = lcs / len(pred), lcs / len(ref)
    return 2 * precision * recall / (precision + recall)
