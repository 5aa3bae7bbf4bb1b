"""Build the world name lexicon of the de-identifier, and the names held out from it.

Run (a developer step; its outputs are committed, so nothing reads a pickle at run time)::

    .venv/bin/pip download --no-deps names-dataset==3.3.1 -d build/wheels
    .venv/bin/python scripts/build_name_lexicon.py build/wheels/names_dataset-3.3.1-py3-none-any.whl

The PyPI wheel ``names-dataset`` 3.3.1 ships first and last names from 105
countries, with each name's rank in each country, as gzipped pickles. They are
read here with an unpickler that refuses every global (plain dicts, strings and
numbers need none), so no code in the file can run; this is the only place the
project reads a pickle.

For each country the 500 best-ranked first names and surnames are taken. A name
is **held out** when the SHA-256 of its case-folded spelling falls in one fifth
of the hash space, decided by the spelling alone, so a held-out name is absent
from every list whether it is a first name, a surname or both. Held-out names
(and every name of the project's older US lists, which the generator of the
synthetic cohort shares) never enter the lexicon; the held-out ones that are in
no list at all are written, with their country and region of origin, for the
evaluation corpus that scores detection on names the recognizers never saw.

Outputs:

* ``llm/data/deid/lexicon/world_first_names.txt``, ``world_surnames.txt``:
  the lexicon (four fifths of the names), one per line;
* ``llm/data/deid/heldout/names.tsv``: ``name, kind, country, region, gender``
  of the held-out names.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import pickle
import unicodedata
import zipfile
from collections import defaultdict
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
LEXICON = REPO / "llm" / "data" / "deid" / "lexicon"
HELD_OUT = REPO / "llm" / "data" / "deid" / "heldout" / "names.tsv"
WHEEL_VERSION = "3.3.1"
PER_COUNTRY = 500
HELD_OUT_FIFTHS = 1  # of 5

# Where a name comes from, by the country it ranks best in (ISO 3166 alpha-2).
REGIONS: dict[str, tuple[str, ...]] = {
    "Sub-Saharan Africa": (
        "AO", "BF", "BI", "BW", "CM", "DJ", "ET", "GH", "MU", "NA", "NG", "ZA",
    ),
    "Middle East and North Africa": (
        "AE", "BH", "DZ", "EG", "IL", "IQ", "IR", "JO", "KW", "LB", "LY", "MA", "OM", "PS",
        "QA", "SA", "SD", "SY", "TN", "TR", "YE",
    ),
    "Europe": (
        "AL", "AT", "BE", "BG", "CH", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GB",
        "GR", "HR", "HU", "IE", "IS", "IT", "LT", "LU", "MD", "MT", "NL", "NO", "PL", "PT",
        "RS", "RU", "SE", "SI",
    ),
    "South Asia": ("AF", "BD", "IN", "MV"),
    "Central Asia and Caucasus": ("AZ", "GE", "KZ", "TM"),
    "East Asia": ("CN", "HK", "JP", "KR", "MO", "TW"),
    "Southeast Asia and Pacific": ("BN", "FJ", "ID", "KH", "MY", "PH", "SG"),
    "Latin America and Caribbean": (
        "AR", "BO", "BR", "CL", "CO", "CR", "EC", "GT", "HN", "HT", "JM", "MX", "PA", "PE",
        "PR", "SV", "UY",
    ),
    "North America": ("CA", "US"),
}  # fmt: skip
REGION_OF = {country: region for region, countries in REGIONS.items() for country in countries}
KINDS = {"first": "first_names", "last": "last_names"}
OLD_LISTS = ("first_names.txt", "surnames.txt")


class _NoGlobals(pickle.Unpickler):
    """Plain containers only: any global (a class, a function) is refused before it loads."""

    def find_class(self, module: str, name: str) -> Any:
        raise pickle.UnpicklingError(f"refused global {module}.{name}: data only")


def held_out(name: str) -> bool:
    """Whether a spelling is held out of every lexicon (one fifth of names, by hash)."""
    digest = hashlib.sha256(name.casefold().encode("utf-8")).digest()
    return digest[0] % 5 < HELD_OUT_FIFTHS


def usable(name: str) -> bool:
    """One word of letters (apostrophes and hyphens inside), at least two letters long."""
    core = name.replace("'", "").replace("-", "")
    return len(core) >= 2 and core.isalpha() and name[0].isalpha() and name[-1].isalpha()


def read_table(wheel: Path, kind: str) -> dict[str, dict[str, Any]]:
    member = f"names_dataset/v3/{KINDS[kind]}.pkl.gz"
    with zipfile.ZipFile(wheel) as archive, archive.open(member) as raw:
        data = _NoGlobals(io.BytesIO(gzip.decompress(raw.read()))).load()
    if not isinstance(data, dict):
        raise SystemExit(f"{wheel}: {member}: expected a dict, got {type(data).__name__}")
    return data


def best_ranked(table: dict[str, dict[str, Any]]) -> dict[str, tuple[str, int]]:
    """Each selected name with the country it ranks best in and that rank."""
    per_country: dict[str, list[tuple[int, str]]] = defaultdict(list)
    for name, info in table.items():
        for country, rank in (info.get("rank") or {}).items():
            if country in REGION_OF and isinstance(rank, int):
                per_country[country].append((rank, unicodedata.normalize("NFC", name)))
    chosen: dict[str, tuple[str, int]] = {}
    for country, ranked in per_country.items():
        for rank, name in sorted(ranked)[:PER_COUNTRY]:
            if usable(name) and (name not in chosen or rank < chosen[name][1]):
                chosen[name] = (country, rank)
    return chosen


def gender_of(info: dict[str, Any]) -> str:
    genders = info.get("gender") or {}
    return max(genders, key=genders.get) if genders else ""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("wheel", type=Path, help=f"names_dataset-{WHEEL_VERSION} wheel file")
    args = parser.parse_args(argv)
    wheel_sha = hashlib.sha256(args.wheel.read_bytes()).hexdigest()
    old = {
        w.strip().casefold()
        for f in OLD_LISTS
        for w in (LEXICON / f).read_text(encoding="utf-8").splitlines()
        if w.strip() and not w.startswith("#")
    }
    header = (
        f"# Generated by scripts/build_name_lexicon.py from names-dataset {WHEEL_VERSION}\n"
        f"# (wheel sha256 {wheel_sha}): the {PER_COUNTRY} best-ranked names of each of\n"
        f"# {len(REGION_OF)} countries, less the fifth held out for evaluation (by hash of\n"
        "# the spelling; see llm/data/deid/heldout/). One name per line.\n"
    )
    rows: list[tuple[str, str, str, str, str]] = []
    for kind, stem in (("first", "world_first_names"), ("last", "world_surnames")):
        table = read_table(args.wheel, kind)
        chosen = best_ranked(table)
        lexicon = sorted(n for n in chosen if not held_out(n))
        (LEXICON / f"{stem}.txt").write_text(header + "\n".join(lexicon) + "\n", encoding="utf-8")
        for name in sorted(n for n in chosen if held_out(n) and n.casefold() not in old):
            country = chosen[name][0]
            rows.append((name, kind, country, REGION_OF[country], gender_of(table[name])))
        print(f"{kind}: {len(chosen)} names, {len(lexicon)} in the lexicon")
    HELD_OUT.parent.mkdir(parents=True, exist_ok=True)
    with HELD_OUT.open("w", encoding="utf-8") as fh:
        fh.write(
            f"# Names held out of every lexicon (scripts/build_name_lexicon.py, names-dataset\n"
            f"# {WHEEL_VERSION}, wheel sha256 {wheel_sha}), for the evaluation corpus only.\n"
        )
        fh.write("name\tkind\tcountry\tregion\tgender\n")
        fh.writelines("\t".join(row) + "\n" for row in rows)
    print(f"held out: {len(rows)} names -> {HELD_OUT.relative_to(REPO)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
