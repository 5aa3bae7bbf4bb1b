"""ROUGE-L: the bit-parallel LCS against the textbook dynamic programme."""

from __future__ import annotations

import random

import pytest

from eval.metrics.text import lcs_length, rouge_l_f1, tokenize


def _lcs_dp(a: list[str], b: list[str]) -> int:
    table = [[0] * (len(b) + 1) for _ in range(len(a) + 1)]
    for i, x in enumerate(a):
        for j, y in enumerate(b):
            table[i + 1][j + 1] = (
                table[i][j] + 1 if x == y else max(table[i][j + 1], table[i + 1][j])
            )
    return table[-1][-1]


@pytest.mark.parametrize("seed", range(5))
def test_lcs_equals_dynamic_programme(seed: int) -> None:
    rng = random.Random(seed)
    for _ in range(200):
        a = [rng.choice("abcde") for _ in range(rng.randint(0, 30))]
        b = [rng.choice("abcde") for _ in range(rng.randint(0, 30))]
        assert lcs_length(a, b) == _lcs_dp(a, b)


def test_rouge_l_known_values() -> None:
    # LCS 3 of 3 and 6 tokens: P = 1, R = 0.5
    assert rouge_l_f1("the cat sat", "the cat sat on the mat") == pytest.approx(2 * 1 * 0.5 / 1.5)
    assert rouge_l_f1("No acute disease.", "no acute disease") == 1.0
    assert rouge_l_f1("", "anything") == 0.0
    assert rouge_l_f1("alpha", "beta") == 0.0
    assert tokenize("Pt's BP: 120/80, HR-72") == ["pt", "s", "bp", "120", "80", "hr", "72"]
