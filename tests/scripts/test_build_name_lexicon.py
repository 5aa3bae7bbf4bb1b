"""The world name lexicon and its held-out names never share a spelling."""

from __future__ import annotations

import csv
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LEXICON = REPO / "llm" / "data" / "deid" / "lexicon"
HELD_OUT = REPO / "llm" / "data" / "deid" / "heldout" / "names.tsv"
sys.path.insert(0, str(REPO / "scripts"))

from build_name_lexicon import REGION_OF, held_out, usable  # noqa: E402


def _words(path: Path) -> set[str]:
    lines = path.read_text(encoding="utf-8").splitlines()
    return {w.strip().casefold() for w in lines if w.strip() and not w.startswith("#")}


def _held_out_rows() -> list[dict[str, str]]:
    lines = [line for line in HELD_OUT.read_text(encoding="utf-8").splitlines() if line[:1] != "#"]
    return list(csv.DictReader(lines, delimiter="\t"))


# lists of words that are never taken for names (english_common.txt: a found name is not
# propagated in lower case when it is one): holding a held-out name can only lower recall
NOT_NAME_LISTS = {"english_common.txt"}


def test_no_held_out_name_is_in_any_lexicon() -> None:
    names = [f for f in LEXICON.glob("*.txt") if f.name not in NOT_NAME_LISTS]
    assert len(names) == 4
    lexicon = set().union(*(_words(f) for f in names))
    rows = _held_out_rows()
    assert len(rows) > 10_000
    assert not {r["name"].casefold() for r in rows} & lexicon


def test_the_split_is_by_spelling_and_a_fifth() -> None:
    names = sorted(_words(LEXICON / "world_first_names.txt"))
    assert not any(held_out(n) for n in names)
    share = sum(held_out(f"name{i}") for i in range(10_000)) / 10_000
    assert 0.18 < share < 0.22
    assert held_out("Esperanza") == held_out("ESPERANZA")


def test_every_held_out_name_has_a_known_origin() -> None:
    for row in _held_out_rows():
        assert REGION_OF[row["country"]] == row["region"]
        assert row["kind"] in {"first", "last"}
        assert usable(row["name"])


def test_usable_names_are_one_word_of_letters() -> None:
    assert usable("O'Neil") and usable("Jean-Luc") and usable("Zoë")
    assert not usable("A") and not usable("Mary Ann") and not usable("J.") and not usable("-Al")
