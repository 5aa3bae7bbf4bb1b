"""Score PHI detections against the spans of ``phi_spans.jsonl`` (see :mod:`llm.data.phi`).

Per entity type and overall:

* **recall**: share of true PHI spans that at least one detection overlaps
  (of any type: what matters for de-identification is that the text was
  replaced); ``typed_recall`` asks the detection to have the same type.
* **precision**: share of detections that overlap at least one true span.
* **char_recall**: share of the characters of true spans that detections
  cover. This is the leakage measure: a name whose first half was replaced
  still leaks its second half.
* **char_precision**: share of detected characters that lie inside true spans.

Where the spans file has them (the held-out corpus of
:mod:`llm.data.deid.heldout.corpus` writes both):

* **names by origin**: recall of name spans per region and per country of
  origin of the name, each with a 95% Wilson interval, and the worst group
  (lowest recall among groups with at least ``min_group`` names);
* **clinical terms kept**: share of marked clinical terms (drugs, eponyms,
  units, abbreviations) that no detection touches.

Notes without a line in the spans file hold no PHI: every detection in them
is a false positive. Everything reported is a count or a ratio, never text.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from pydantic import ValidationError

from llm.data.io import format_loc
from llm.data.phi import PHI_ENTITIES, NotePhi
from llm.errors import BadInputError, RecordError
from llm.intervals import wilson_interval

Span = tuple[int, int, str]
# Groups with fewer true names than this are reported but not ranked for the worst group.
MIN_GROUP = 30


@dataclass
class NoteDetections:
    """Detections in one note: ``(start, end, entity_type)`` offsets into the original text."""

    patient_id: str
    note_id: str
    length: int
    spans: list[Span]


@dataclass
class GoldNote:
    """The true PHI spans of one note and the line of the spans file they came from."""

    line: int
    spans: list[Span]
    origins: dict[int, tuple[str, str]] = field(default_factory=dict)
    """``{index into spans: (country, region)}`` for name spans whose origin is known."""
    keep: list[Span] = field(default_factory=list)
    """Clinical terms that must stay intact: ``(start, end, kind)``."""


@dataclass
class GroupRecall:
    """How many of a group's true spans were found (or, for clinical terms, kept)."""

    gold: int = 0
    found: int = 0

    @property
    def recall(self) -> float | None:
        return self.found / self.gold if self.gold else None

    @property
    def interval(self) -> tuple[float, float] | None:
        return wilson_interval(self.found, self.gold)

    def to_dict(self) -> dict[str, object]:
        ci = self.interval
        return {
            "recall": self.recall,
            "ci95": list(ci) if ci else None,
            "gold": self.gold,
            "found": self.found,
        }


@dataclass
class OriginRecall:
    """Name recall by origin group, shaped like fairlearn's ``MetricFrame``.

    ``overall`` pools every name with an origin; ``by_group`` holds one entry
    per group (empty groups are absent). Groups with fewer than ``min_group``
    names are reported but left out of ``worst``, ``difference`` and ``ratio``.
    """

    overall: GroupRecall
    by_group: dict[str, GroupRecall]
    min_group: int = MIN_GROUP

    def _ranked(self) -> list[tuple[float, str]]:
        return sorted(
            (g.recall, name)
            for name, g in self.by_group.items()
            if g.gold >= self.min_group and g.recall is not None
        )

    @property
    def worst(self) -> str | None:
        """The ranked group with the lowest recall (ties: first by name)."""
        ranked = self._ranked()
        return ranked[0][1] if ranked else None

    def difference(self) -> float | None:
        """Highest minus lowest recall among ranked groups."""
        ranked = self._ranked()
        return ranked[-1][0] - ranked[0][0] if ranked else None

    def ratio(self) -> float | None:
        """Lowest over highest recall among ranked groups."""
        ranked = self._ranked()
        if not ranked or ranked[-1][0] == 0:
            return None
        return ranked[0][0] / ranked[-1][0]

    def to_dict(self) -> dict[str, object]:
        return {
            "overall": self.overall.to_dict(),
            "worst": self.worst,
            "difference": self.difference(),
            "ratio": self.ratio(),
            "min_group": self.min_group,
            "by_group": {k: self.by_group[k].to_dict() for k in sorted(self.by_group)},
        }


@dataclass
class TermsKept:
    """Marked clinical terms that no detection touched, overall and per kind."""

    overall: GroupRecall
    by_kind: dict[str, GroupRecall]

    @property
    def kept(self) -> float | None:
        return self.overall.recall

    def to_dict(self) -> dict[str, object]:
        return {
            "kept": self.kept,
            "ci95": self.overall.to_dict()["ci95"],
            "terms": self.overall.gold,
            "terms_kept": self.overall.found,
            "by_kind": {
                k: {"kept": g.recall, "terms": g.gold, "terms_kept": g.found}
                for k, g in sorted(self.by_kind.items())
            },
        }


@dataclass
class EntityScores:
    """Counts and ratios for one entity type (or all of them)."""

    gold: int = 0
    gold_found: int = 0
    gold_found_typed: int = 0
    predicted: int = 0
    predicted_correct: int = 0
    gold_chars: int = 0
    gold_chars_covered: int = 0
    predicted_chars: int = 0
    predicted_chars_in_gold: int = 0

    @staticmethod
    def _ratio(num: int, den: int) -> float | None:
        return num / den if den else None

    @property
    def recall(self) -> float | None:
        return self._ratio(self.gold_found, self.gold)

    @property
    def typed_recall(self) -> float | None:
        return self._ratio(self.gold_found_typed, self.gold)

    @property
    def precision(self) -> float | None:
        return self._ratio(self.predicted_correct, self.predicted)

    @property
    def char_recall(self) -> float | None:
        return self._ratio(self.gold_chars_covered, self.gold_chars)

    @property
    def char_precision(self) -> float | None:
        return self._ratio(self.predicted_chars_in_gold, self.predicted_chars)

    def to_dict(self) -> dict[str, float | int | None]:
        counts = {k: v for k, v in self.__dict__.items()}
        ratios = {
            "recall": self.recall,
            "typed_recall": self.typed_recall,
            "precision": self.precision,
            "char_recall": self.char_recall,
            "char_precision": self.char_precision,
        }
        return {**ratios, **counts}


@dataclass
class DeidEvaluation:
    """Scores per entity type and overall."""

    overall: EntityScores
    by_entity: dict[str, EntityScores]
    notes: int
    gold_notes_skipped: int = 0  # spans of patients not in the output (rejected lines)
    spans_path: str | None = None
    names_by_region: OriginRecall | None = None  # None: the spans file has no origins
    names_by_country: OriginRecall | None = None
    clinical_terms: TermsKept | None = None  # None: the spans file marks no clinical terms

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``deid_eval.json``)."""
        out: dict[str, object] = {
            "spans_path": self.spans_path,
            "notes": self.notes,
            "gold_notes_skipped": self.gold_notes_skipped,
            "overall": self.overall.to_dict(),
            "by_entity": {k: v.to_dict() for k, v in self.by_entity.items()},
        }
        if self.names_by_region is not None and self.names_by_country is not None:
            out["names_by_region"] = self.names_by_region.to_dict()
            out["names_by_country"] = self.names_by_country.to_dict()
        if self.clinical_terms is not None:
            out["clinical_terms"] = self.clinical_terms.to_dict()
        return out


def read_phi_spans(path: str | Path) -> dict[tuple[str, str], GoldNote]:
    """Read ``phi_spans.jsonl``.

    Args:
        path: the spans file.

    Returns:
        ``{(patient_id, note_id): GoldNote}``.

    Raises:
        BadInputError: the file is missing.
        RecordError: a bad line (file, line and field named) or a note listed twice.
    """
    p = Path(path)
    if not p.is_file():
        raise BadInputError(f"{p}: PHI spans file not found (give one with --spans)")
    gold: dict[tuple[str, str], GoldNote] = {}
    with p.open(encoding="utf-8") as fh:
        for lineno, raw in enumerate(fh, start=1):
            if not raw.strip():
                continue
            try:
                note = NotePhi.model_validate_json(raw)
            except ValidationError as exc:
                first = exc.errors()[0]
                raise RecordError(
                    str(p), lineno, format_loc(tuple(first["loc"])), first["msg"]
                ) from None
            for i, s in enumerate(note.spans):
                if s.end <= s.start:
                    raise RecordError(
                        str(p), lineno, f"spans[{i}].end", "end must be greater than start"
                    )
            key = (note.patient_id, note.note_id)
            if key in gold:
                raise RecordError(
                    str(p), lineno, "note_id", f"note listed twice (first on line {gold[key].line})"
                )
            gold[key] = GoldNote(
                lineno,
                [(s.start, s.end, s.entity_type) for s in note.spans],
                {
                    i: (s.origin.country, s.origin.region)
                    for i, s in enumerate(note.spans)
                    if s.origin is not None
                },
                [(k.start, k.end, k.kind) for k in note.keep],
            )
    return gold


def _covered(intervals: list[tuple[int, int]]) -> list[tuple[int, int]]:
    merged: list[tuple[int, int]] = []
    for s, e in sorted(intervals):
        if merged and s <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], e))
        else:
            merged.append((s, e))
    return merged


def _overlap_chars(start: int, end: int, cover: list[tuple[int, int]]) -> int:
    return sum(max(0, min(end, e) - max(start, s)) for s, e in cover)


def _score_note(
    gold: list[Span], pred: list[Span], scores: dict[str, EntityScores], overall: EntityScores
) -> None:
    pred_cover = _covered([(s, e) for s, e, _ in pred])
    gold_cover = _covered([(s, e) for s, e, _ in gold])
    for s, e, t in gold:
        found = any(ps < e and s < pe for ps, pe, _ in pred)
        typed = any(ps < e and s < pe and pt == t for ps, pe, pt in pred)
        chars = _overlap_chars(s, e, pred_cover)
        for sc in (scores.setdefault(t, EntityScores()), overall):
            sc.gold += 1
            sc.gold_found += found
            sc.gold_found_typed += typed
            sc.gold_chars += e - s
            sc.gold_chars_covered += chars
    for s, e, t in pred:
        correct = any(gs < e and s < ge for gs, ge, _ in gold)
        for sc in (scores.setdefault(t, EntityScores()), overall):
            sc.predicted += 1
            sc.predicted_correct += correct
            sc.predicted_chars += e - s
            sc.predicted_chars_in_gold += _overlap_chars(s, e, gold_cover)


def evaluate_detections(
    gold: dict[tuple[str, str], GoldNote],
    predicted: list[NoteDetections],
    *,
    spans_path: str | None = None,
    min_group: int = MIN_GROUP,
) -> DeidEvaluation:
    """Score detections against true PHI spans.

    Args:
        gold: from :func:`read_phi_spans`.
        predicted: detections of every note that was de-identified.
        spans_path: the spans file's name, for error messages and the report.
        min_group: origin groups with fewer true names are not ranked for the worst group.

    Returns:
        The scores. Gold notes of patients that were not de-identified (lines
        rejected from IN) are counted in ``gold_notes_skipped``, not scored.

    Raises:
        RecordError: a gold note that the patient's record does not have, or a
            span beyond the end of its note.
    """
    where = spans_path or "<spans>"
    scores = {e: EntityScores() for e in PHI_ENTITIES}
    overall = EntityScores()
    regions: dict[str, GroupRecall] = {}
    countries: dict[str, GroupRecall] = {}
    terms: dict[str, GroupRecall] = {}
    has_origins = has_terms = False
    seen_patients = {n.patient_id for n in predicted}
    seen_notes: set[tuple[str, str]] = set()
    for note in predicted:
        key = (note.patient_id, note.note_id)
        seen_notes.add(key)
        entry = gold.get(key)
        spans = entry.spans if entry is not None else []
        if entry is not None:
            for i, (_, end, _) in enumerate(spans):
                if end > note.length:
                    raise RecordError(
                        where,
                        entry.line,
                        f"spans[{i}].end",
                        f"{end} is past the end of the note ({note.length})",
                    )
        _score_note(spans, note.spans, scores, overall)
        if entry is not None:
            has_origins = has_origins or bool(entry.origins)
            has_terms = has_terms or bool(entry.keep)
            _score_groups(entry, note.spans, regions, countries, terms)
    skipped = 0
    for (pid, note_id), entry in gold.items():
        if (pid, note_id) in seen_notes:
            continue
        if pid in seen_patients:
            raise RecordError(where, entry.line, "note_id", f"patient {pid} has no note {note_id}")
        skipped += 1
    return DeidEvaluation(
        overall,
        scores,
        len(predicted),
        skipped,
        spans_path,
        names_by_region=_origin_recall(regions, min_group) if has_origins else None,
        names_by_country=_origin_recall(countries, min_group) if has_origins else None,
        clinical_terms=_terms_kept(terms) if has_terms else None,
    )


def _touched(start: int, end: int, pred: list[Span]) -> bool:
    return any(ps < end and start < pe for ps, pe, _ in pred)


def _score_groups(
    entry: GoldNote,
    pred: list[Span],
    regions: dict[str, GroupRecall],
    countries: dict[str, GroupRecall],
    terms: dict[str, GroupRecall],
) -> None:
    for i, (country, region) in entry.origins.items():
        start, end, _ = entry.spans[i]
        found = _touched(start, end, pred)
        for group in (
            regions.setdefault(region, GroupRecall()),
            countries.setdefault(country, GroupRecall()),
        ):
            group.gold += 1
            group.found += found
    for start, end, kind in entry.keep:
        kept = not _touched(start, end, pred)
        group = terms.setdefault(kind, GroupRecall())
        group.gold += 1
        group.found += kept


def _pooled(groups: dict[str, GroupRecall]) -> GroupRecall:
    return GroupRecall(sum(g.gold for g in groups.values()), sum(g.found for g in groups.values()))


def _origin_recall(groups: dict[str, GroupRecall], min_group: int) -> OriginRecall:
    return OriginRecall(_pooled(groups), groups, min_group)


def _terms_kept(groups: dict[str, GroupRecall]) -> TermsKept:
    return TermsKept(_pooled(groups), groups)
