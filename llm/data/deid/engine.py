"""The de-identifier: find PHI with Presidio, then replace it with tags or surrogates.

Analysis runs Presidio's :class:`~presidio_analyzer.AnalyzerEngine` over the
offline spaCy pipeline of :mod:`llm.data.deid.nlp` with the clinical
recognizers of :mod:`llm.data.deid.recognizers` (and nothing else: Presidio's
predefined recognizers target other kinds of text). Overlapping hits are
merged into one span, so that no character of a hit is left behind. Names
found anywhere in a patient's notes are then looked for in all of them
(``Mr. Smith`` in the H&P lets ``Smith`` be found alone in the discharge
summary).

Two detection configurations are selectable (``ner=``): ``"statistical"``
(default) adds the hash-checked spaCy NER of :mod:`llm.data.deid.ner`, the
world name lexicons and the recognizers of :mod:`llm.data.deid.identifiers`
(URLs, IP addresses, device and vehicle identifiers, health plan and licence
numbers, international phones, ZIP+4); ``"rules"`` is the earlier engine
(entity ruler with the US name lists and the clinical recognizers), kept so
that both can be measured side by side.

Replacement runs Presidio's :class:`~presidio_anonymizer.AnonymizerEngine`
with one operator per entity type: ``tag`` writes ``[NAME]``, ``[DATE]``...;
``surrogate`` writes realistic fake values (:mod:`llm.data.deid.surrogates`)
and, with date shifting on, every date moved by the patient's offset in its
original format.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Literal

from llm.data.deid.dates import shift_date_text
from llm.data.deid.keys import MIN_KEY_BYTES, STRATEGIES
from llm.data.deid.nlp import EntityOnlySpacyNlpEngine, PatternContextEnhancer, ensure_pipeline
from llm.data.deid.recognizers import NOT_NAME_WORDS, clinical_recognizers
from llm.data.deid.surrogates import SurrogateFactory
from llm.data.deid.vocabulary import common_english, eponym_spans, is_protected
from llm.data.phi import PHI_ENTITIES
from llm.errors import BadInputError

if TYPE_CHECKING:
    from presidio_analyzer import AnalyzerEngine
    from presidio_analyzer.nlp_engine import NlpArtifacts
    from presidio_anonymizer import AnonymizerEngine

Strategy = Literal["tag", "surrogate"]
NerMode = Literal["rules", "statistical"]
NER_MODES: tuple[str, ...] = ("rules", "statistical")
# Offsets move dates 1 to 10 years into the past: far enough that no real date survives.
SHIFT_MIN_DAYS = 365
SHIFT_MAX_DAYS = 3650
AGE_CAP = 90

# Presidio logs recognizer loading at INFO; keep the run's output to our own lines.
for _name in ("presidio-analyzer", "presidio-anonymizer"):
    logging.getLogger(_name).setLevel(logging.ERROR)


@dataclass(frozen=True)
class Detection:
    """One PHI span found in a text (character offsets, end exclusive)."""

    start: int
    end: int
    entity_type: str
    score: float


def merge_detections(detections: Sequence[Detection]) -> list[Detection]:
    """Merge overlapping detections into one span each, typed by the strongest member.

    Ties in score go to the longer span. The union is kept so that no
    character any recognizer flagged is left in the text.
    """
    ordered = sorted(detections, key=lambda d: (d.start, -d.end))
    merged: list[Detection] = []
    best: Detection | None = None
    for d in ordered:
        if merged and d.start < merged[-1].end:
            last = merged[-1]
            assert best is not None
            if (d.score, d.end - d.start) > (best.score, best.end - best.start):
                best = d
            merged[-1] = Detection(last.start, max(last.end, d.end), best.entity_type, best.score)
        else:
            merged.append(d)
            best = d
    return merged


def join_adjacent_names(text: str, detections: list[Detection]) -> list[Detection]:
    """Join NAME spans separated only by spaces (``Guadalupe`` + ``Fitzgerald``) into one."""
    out: list[Detection] = []
    for d in detections:
        prev = out[-1] if out else None
        if (
            prev is not None
            and prev.entity_type == d.entity_type == "NAME"
            and 0 < d.start - prev.end <= 2
            and not text[prev.end : d.start].strip(" ")
        ):
            out[-1] = Detection(prev.start, d.end, "NAME", max(prev.score, d.score))
        else:
            out.append(d)
    return out


# a name word in any alphabet: letters, with inner apostrophes and hyphens
_NAME_WORD = re.compile(r"[^\W\d_][^\W\d_'’\-]*(?:['’\-][^\W\d_]+)*")
# an eponym in use ("Parkinson's disease", "Bell palsy"): not a name even when the word is one
_EPONYM_USE = re.compile(
    r"(?:['’]s?)?[ \t]+(?:disease|syndrome|palsy|lymphoma|sign|test|maneuver|phenomenon|ulcer"
    r"|sarcoma|tumou?r|criteria|score|scale|reflex|triad|fracture|procedure|operation)\b",
    re.IGNORECASE,
)


def name_parts(word: str) -> list[str]:
    """A name word and its parts: ``García-López`` → itself, ``García``, ``López``."""
    parts = [word]
    pieces = re.split(r"-", word)
    if len(pieces) > 1:
        parts.extend(p for p in pieces if len(p) >= 2)
    return parts


def _case_variants(word: str) -> tuple[str, ...]:
    """The spellings of a found name word looked for elsewhere: as found, in capitals, and in
    lower case unless that is an ordinary English or clinical word (``long``, ``bell``)."""
    lower = word.lower()
    if len(word) < 3 or lower in common_english() or is_protected(lower):
        return (word, word.upper())
    return (word, word.upper(), lower)


def real_values(texts: Sequence[str], detections: Sequence[Sequence[Detection]]) -> frozenset[str]:
    """Lower-case name words and hospital names found in a patient's texts.

    Surrogates avoid these, so that a surrogate never reads as another real
    person or place of the same patient.
    """
    out: set[str] = set()
    for text, dets in zip(texts, detections, strict=True):
        for d in dets:
            span = text[d.start : d.end]
            if d.entity_type == "NAME":
                out.update(w.group().lower() for w in _NAME_WORD.finditer(span))
            elif d.entity_type == "HOSPITAL":
                out.add(span.lower())
    return frozenset(out)


def _without_eponyms(
    detections: list[Detection], spans: Sequence[tuple[int, int]]
) -> list[Detection]:
    """Drop NAME detections that lie inside an eponym in use (``spans``, from
    :func:`~llm.data.deid.vocabulary.eponym_spans`): in ``Charcot-Marie-Tooth disease``,
    ``Marie`` is in the name lists but is part of a clinical term."""
    if not spans:
        return detections
    return [
        d
        for d in detections
        if d.entity_type != "NAME" or not any(s <= d.start and d.end <= e for s, e in spans)
    ]


class Deidentifier:
    """Find and replace PHI in clinical text.

    Args:
        strategy: ``"tag"`` (``[NAME]``) or ``"surrogate"`` (realistic fake values).
        date_shift: move dates by a per-patient offset (surrogate strategy; the
            tag strategy writes ``[DATE]`` either way). Structured times are
            shifted by :mod:`llm.data.deid.records` with the same offset.
        key: secret for offsets and surrogates (see :func:`load_key`).
        score_threshold: Presidio hits scoring below this are ignored.
        cache_dir: where the spaCy pipeline is cached (default under ``~/.cache/clinical-llm``).
        ner: ``"statistical"`` (the hash-checked spaCy NER, world name lexicons and every
            Safe Harbor identifier) or ``"rules"`` (the earlier rule-only engine).

    Raises:
        BadInputError: unknown strategy or NER mode, or too short a key.
    """

    def __init__(
        self,
        *,
        strategy: Strategy = "surrogate",
        date_shift: bool = True,
        key: bytes,
        score_threshold: float = 0.4,
        cache_dir: Path | None = None,
        ner: NerMode = "statistical",
    ) -> None:
        if ner not in NER_MODES:
            raise BadInputError(f"unknown ner mode {ner!r}: use one of {', '.join(NER_MODES)}")
        if strategy not in STRATEGIES:
            raise BadInputError(
                f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}"
            )
        if len(key) < MIN_KEY_BYTES:
            raise BadInputError(f"de-identification key must be at least {MIN_KEY_BYTES} bytes")
        self.strategy = strategy
        self.date_shift = date_shift
        self.score_threshold = score_threshold
        self.ner = ner
        self._key = key
        self._surrogates = SurrogateFactory(key)
        self._cache_dir = cache_dir
        self._analyzer: AnalyzerEngine | None = None
        self._anonymizer: AnonymizerEngine | None = None

    # ----------------------------------------------------------------- analysis
    def _engines(self) -> tuple[AnalyzerEngine, AnonymizerEngine]:
        # imported here: presidio takes a second to import, and most CLI commands never need it
        if self._analyzer is None:
            from presidio_analyzer import AnalyzerEngine, RecognizerRegistry
            from presidio_analyzer.nlp_engine import NerModelConfiguration
            from presidio_analyzer.predefined_recognizers import SpacyRecognizer
            from presidio_anonymizer import AnonymizerEngine

            ner = NerModelConfiguration(
                model_to_presidio_entity_mapping={"NAME": "NAME"}, default_score=0.85
            )
            nlp_engine: EntityOnlySpacyNlpEngine
            recognizers = clinical_recognizers()
            if self.ner == "statistical":
                from llm.data.deid.identifiers import identifier_recognizers
                from llm.data.deid.ner import StatisticalEntityRecognizer
                from llm.data.deid.nlp import PrebuiltSpacyNlpEngine, build_statistical_pipeline

                nlp_engine = PrebuiltSpacyNlpEngine(build_statistical_pipeline(), ner)
                recognizers += [*identifier_recognizers(), StatisticalEntityRecognizer()]
            else:
                model = ensure_pipeline(self._cache_dir)
                nlp_engine = EntityOnlySpacyNlpEngine(
                    models=[{"lang_code": "en", "model_name": str(model)}],
                    ner_model_configuration=ner,
                )
            if self.ner == "rules":
                recognizers.append(
                    SpacyRecognizer(supported_language="en", supported_entities=["NAME"])
                )
            registry = RecognizerRegistry(supported_languages=["en"])
            for recognizer in recognizers:
                registry.add_recognizer(recognizer)
            self._analyzer = AnalyzerEngine(
                registry=registry,
                nlp_engine=nlp_engine,
                supported_languages=["en"],
                context_aware_enhancer=PatternContextEnhancer(),
            )
            self._anonymizer = AnonymizerEngine()
        assert self._analyzer is not None and self._anonymizer is not None
        return self._analyzer, self._anonymizer

    def analyze(self, text: str, nlp_artifacts: NlpArtifacts | None = None) -> list[Detection]:
        """PHI spans of one text, merged so that none overlap, in text order.

        Args:
            text: the text.
            nlp_artifacts: the spaCy pipeline's results for ``text`` when a batch already
                ran it (:meth:`analyze_patient`); computed here otherwise.
        """
        analyzer, _ = self._engines()
        results = analyzer.analyze(
            text=text,
            language="en",
            entities=list(PHI_ENTITIES),
            score_threshold=self.score_threshold,
            nlp_artifacts=nlp_artifacts,
        )
        return merge_detections(
            [Detection(r.start, r.end, r.entity_type, r.score) for r in results]
        )

    def _analyze_batch(self, texts: Sequence[str]) -> list[list[Detection]]:
        """:meth:`analyze` of several texts, the spaCy pipeline run over them in one batch."""
        if self.ner == "rules" or len(texts) < 2:
            return [self.analyze(t) for t in texts]
        analyzer, _ = self._engines()
        engine = analyzer.nlp_engine
        assert isinstance(engine, EntityOnlySpacyNlpEngine)
        # the pipeline run here, not through process_batch: that rebuilds each text from its doc
        docs = engine.get_nlp("en").pipe(texts, batch_size=64)
        return [
            self.analyze(text, engine._doc_to_nlp_artifact(doc, "en"))
            for text, doc in zip(texts, docs, strict=True)
        ]

    def analyze_patient(self, texts: Sequence[str]) -> list[list[Detection]]:
        """Analyze all notes of one patient, then look for every name found in each of them.

        Every word of a name found anywhere (``Esperanza Quispe``), and each part of a
        hyphenated one (``García-López`` → ``García``, ``López``), is then found
        wherever it stands in any of the texts, also in capitals, and in lower case
        unless the word is an ordinary English word or a clinical one (``Long``, ``Bell``:
        :func:`~llm.data.deid.vocabulary.common_english`); an eponym in use
        (``Bell's palsy``) is left alone.

        Args:
            texts: the patient's note texts.

        Returns:
            Merged detections per text, in the order of ``texts``.
        """
        eponyms = [eponym_spans(text) for text in texts]
        per_text = [
            _without_eponyms(dets, spans)
            for dets, spans in zip(self._analyze_batch(texts), eponyms, strict=True)
        ]
        words = {
            part
            for text, dets in zip(texts, per_text, strict=True)
            for d in dets
            if d.entity_type == "NAME"
            for w in _NAME_WORD.finditer(text[d.start : d.end])
            for part in name_parts(w.group())
            if part[0].isupper() and len(part) >= 2 and part.lower() not in NOT_NAME_WORDS
        }
        if not words:
            return per_text
        variants = sorted({v for w in words for v in _case_variants(w)}, key=len, reverse=True)
        pattern = re.compile(rf"(?<![\w'’\-])(?:{'|'.join(map(re.escape, variants))})(?![\w\-])")
        out: list[list[Detection]] = []
        for text, dets, spans in zip(texts, per_text, eponyms, strict=True):
            extra = [
                Detection(m.start(), m.end(), "NAME", 0.5)
                for m in pattern.finditer(text)
                if not _EPONYM_USE.match(text, m.end())
            ]
            merged = merge_detections([*dets, *extra]) if extra else dets
            out.append(join_adjacent_names(text, _without_eponyms(merged, spans)))
        return out

    # -------------------------------------------------------------- replacement
    def date_offset_days(self, patient_id: str) -> int:
        """The patient's date shift in days (negative), from an HMAC of the patient id."""
        digest = hmac.new(
            self._key, f"date-shift\x1f{patient_id}".encode(), hashlib.sha256
        ).digest()
        span = SHIFT_MAX_DAYS - SHIFT_MIN_DAYS + 1
        return -(SHIFT_MIN_DAYS + int.from_bytes(digest[:8], "big") % span)

    def _surrogate_for(
        self, entity: str, patient_id: str, reference_year: int, avoid: frozenset[str]
    ) -> Callable[[str], str]:
        s = self._surrogates
        if entity == "NAME":
            return lambda v: s.name(patient_id, v, avoid)
        if entity == "DATE":
            if not self.date_shift:
                return lambda v: "[DATE]"
            offset = self.date_offset_days(patient_id)
            return lambda v: shift_date_text(v, offset, reference_year=reference_year) or "[DATE]"
        if entity == "AGE":
            return lambda v: re.sub(r"\d+", f"{AGE_CAP}+", v, count=1)
        if entity == "SSN":
            return lambda v: s.digits(patient_id, "SSN", v, first_digit="9")
        if entity in ("MRN", "PHONE", "FAX"):
            return lambda v: s.digits(patient_id, entity, v)
        if entity == "EMAIL":
            return lambda v: s.email(patient_id, v)
        if entity == "ADDRESS":
            return lambda v: s.address(patient_id, v)
        if entity == "HOSPITAL":
            return lambda v: s.hospital(patient_id, v, avoid)
        if entity in ("DEVICE_ID", "VEHICLE_ID"):
            return lambda v: s.digits(patient_id, entity, v)
        if entity == "URL":
            return lambda v: s.url(patient_id, v)
        if entity == "IP_ADDRESS":
            return lambda v: s.ip_address(patient_id, v)
        return lambda v: f"[{entity}]"

    def replace(
        self,
        text: str,
        detections: Sequence[Detection],
        patient_id: str,
        *,
        reference_year: int = 2000,
        real_values: frozenset[str] = frozenset(),
    ) -> str:
        """Replace ``detections`` in ``text`` with the configured strategy.

        Args:
            text: the original text.
            detections: non-overlapping spans (from :meth:`analyze`).
            patient_id: whose text this is (surrogates and date offset are per patient).
            reference_year: year assumed for dates written without one.
            real_values: the patient's real name words and hospital names (lower
                case, see :func:`real_values`), never chosen as surrogates.

        Returns:
            The de-identified text.
        """
        if not detections:
            return text
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        _, anonymizer = self._engines()
        entities = {d.entity_type for d in detections}
        if self.strategy == "tag":
            operators = {e: OperatorConfig("replace", {"new_value": f"[{e}]"}) for e in entities}
        else:
            operators = {
                e: OperatorConfig(
                    "custom",
                    {"lambda": self._surrogate_for(e, patient_id, reference_year, real_values)},
                )
                for e in entities
            }
        results = [RecognizerResult(d.entity_type, d.start, d.end, d.score) for d in detections]
        return anonymizer.anonymize(text=text, analyzer_results=results, operators=operators).text

    def deidentify_text(
        self, text: str, patient_id: str, *, reference_year: int = 2000
    ) -> tuple[str, list[Detection]]:
        """Find and replace the PHI of one text.

        Args:
            text: the original text.
            patient_id: whose text this is.
            reference_year: year assumed for dates written without one.

        Returns:
            ``(new_text, detections)``; detections are offsets into the original text.
        """
        detections = self.analyze_patient([text])[0]
        real = real_values([text], [detections])
        new_text = self.replace(
            text, detections, patient_id, reference_year=reference_year, real_values=real
        )
        return new_text, detections

    def shift_time(self, value: str, patient_id: str) -> str:
        """Shift an ISO-8601 time by the patient's offset, keeping its format.

        Args:
            value: ``2131-04-02`` or ``2131-04-02T08:15:00`` (any ISO form ``fromisoformat`` reads).
            patient_id: whose time this is.

        Returns:
            The shifted time, written the same way.
        """
        days = self.date_offset_days(patient_id)
        m = re.match(r"(\d{4})-(\d{2})-(\d{2})", value)
        if m:  # whole-day shift: only the date part changes, the rest stays byte for byte
            shifted = date(int(m[1]), int(m[2]), int(m[3])) + timedelta(days=days)
            return shifted.isoformat() + value[10:]
        return (datetime.fromisoformat(value) + timedelta(days=days)).isoformat()
