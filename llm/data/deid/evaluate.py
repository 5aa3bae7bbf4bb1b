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

Notes without a line in the spans file hold no PHI: every detection in them
is a false positive. Everything reported is a count or a ratio, never text.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError

from llm.data.io import format_loc
from llm.data.phi import PHI_ENTITIES, NotePhi
from llm.errors import BadInputError, RecordError

Span = tuple[int, int, str]


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

    def to_dict(self) -> dict[str, object]:
        """JSON-ready form (``deid_eval.json``)."""
        return {
            "spans_path": self.spans_path,
            "notes": self.notes,
            "gold_notes_skipped": self.gold_notes_skipped,
            "overall": self.overall.to_dict(),
            "by_entity": {k: v.to_dict() for k, v in self.by_entity.items()},
        }


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
            gold[key] = GoldNote(lineno, [(s.start, s.end, s.entity_type) for s in note.spans])
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
        for sc in (scores[t], overall):
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
) -> DeidEvaluation:
    """Score detections against true PHI spans.

    Args:
        gold: from :func:`read_phi_spans`.
        predicted: detections of every note that was de-identified.
        spans_path: the spans file's name, for error messages and the report.

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
    skipped = 0
    for (pid, note_id), entry in gold.items():
        if (pid, note_id) in seen_notes:
            continue
        if pid in seen_patients:
            raise RecordError(where, entry.line, "note_id", f"patient {pid} has no note {note_id}")
        skipped += 1
    return DeidEvaluation(overall, scores, len(predicted), skipped, spans_path)
