"""De-identify a whole records file: notes, structured times, demographics and assets.

For each patient: all notes are analyzed together (so a name found in one
note is found in the others), PHI is replaced, every structured time
(encounter start/end, note, lab, vital, image and waveform times) is moved by
the patient's date offset, an age over 89 becomes 90, DICOM headers are
scrubbed (:mod:`llm.data.deid.dicom`) into new files beside OUT with PHI text
burned into their pixels blacked out (:mod:`llm.data.deid.burned_in`, where
tesseract is installed; otherwise counted as unchecked), PNG images are
re-encoded without metadata, and waveforms are hard-linked (or copied).

Work is spread over ``workers`` processes, or over a Ray cluster's actors when a
``ray_address`` is given (:mod:`llm.data.ray_map`); output order is input order.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import shutil
import time
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from PIL import Image as PILImage

from llm.data.assets import check_ecg_file
from llm.data.deid.burned_in import BurnedInCounts, BurnedInRedactor, ocr_unavailable
from llm.data.deid.dicom import DicomScrubber
from llm.data.deid.engine import (
    AGE_CAP,
    NER_MODES,
    Deidentifier,
    NerMode,
    Strategy,
    real_values,
)
from llm.data.deid.evaluate import (
    DeidEvaluation,
    NoteDetections,
    evaluate_detections,
    read_phi_spans,
)
from llm.data.io import ReadStats, iter_records, record_to_json
from llm.data.schema import PatientRecord
from llm.errors import BadInputError
from llm.files import atomic_path, atomic_write, check_writable_dir
from llm.ray_cluster import check_ray_address, import_ray


@dataclass
class DeidSummary:
    """What one run did. Holds counts only, never PHI."""

    input_path: str
    output_path: str
    stats: ReadStats
    strategy: str
    date_shift: bool
    key_generated: bool
    ner: str = "statistical"
    """The engine that found the PHI: ``statistical`` (NER beside the rules) or ``rules``."""
    notes: int = 0
    detections: dict[str, int] = field(default_factory=dict)
    images: int = 0
    waveforms: int = 0
    burned_in: BurnedInCounts = field(default_factory=BurnedInCounts)
    """Text burned into DICOM pixels: images checked, redacted, not checked and why."""
    seconds: float = 0.0
    evaluation: DeidEvaluation | None = None


@dataclass(frozen=True)
class _RunConfig:
    strategy: Strategy
    date_shift: bool
    key: bytes = field(repr=False)  # never in a log line or a Ray error
    in_dir: str
    out_dir: str
    cache_dir: str | None
    check_burned_in: bool = False
    ner: NerMode = "statistical"


@dataclass
class _PatientResult:
    line: str
    notes: list[NoteDetections]
    images: int
    waveforms: int
    burned_in: BurnedInCounts = field(default_factory=BurnedInCounts)


def _safe_relative(path: str) -> bool:
    p = PurePosixPath(path)
    return not p.is_absolute() and ".." not in p.parts


class RecordDeidentifier:
    """Applies a :class:`Deidentifier` to whole records and their asset files.

    Args:
        config: the run's settings (strategy, date shift, key, folders).
    """

    def __init__(self, config: _RunConfig) -> None:
        self.config = config
        self.deid = Deidentifier(
            strategy=config.strategy,
            date_shift=config.date_shift,
            key=config.key,
            cache_dir=Path(config.cache_dir) if config.cache_dir else None,
            ner=config.ner,
        )
        self.dicom = DicomScrubber(config.key)
        self.burned_in = (
            BurnedInRedactor(lambda text: [(d.start, d.end) for d in self.deid.analyze(text)])
            if config.check_burned_in
            else None
        )
        self.in_dir = Path(config.in_dir)
        self.out_dir = Path(config.out_dir)

    def _new_asset_path(self, record: PatientRecord, kind: str, path: str, index: str) -> str:
        if _safe_relative(path):
            return path
        # a path outside IN's folder cannot be mirrored under OUT's: file it under the patient
        return f"{kind}/{record.patient_id}/{index}-{PurePosixPath(path).name}"

    def _shift(self, value: str | None, pid: str) -> str | None:
        if value is None or not self.config.date_shift:
            return value
        return self.deid.shift_time(value, pid)

    def process(self, record: PatientRecord) -> _PatientResult:
        """De-identify one record and write its assets under OUT's folder.

        Args:
            record: a validated record (its asset files exist under IN's folder).

        Returns:
            The output line, the detections per note (for evaluation) and asset counts.
        """
        pid = record.patient_id
        notes = [(enc, note) for enc in record.encounters for note in enc.notes]
        texts = [note.text for _, note in notes]
        detections = self.deid.analyze_patient(texts)
        real = real_values(texts, detections)
        note_results: list[NoteDetections] = []
        for (enc, note), dets in zip(notes, detections, strict=True):
            ref_year = int((note.time or enc.time)[:4])
            note_results.append(
                NoteDetections(
                    pid,
                    note.note_id,
                    len(note.text),
                    [(d.start, d.end, d.entity_type) for d in dets],
                )
            )
            note.text = self.deid.replace(
                note.text, dets, pid, reference_year=ref_year, real_values=real
            )
            note.time = self._shift(note.time, pid)
        offset = self.deid.date_offset_days(pid) if self.config.date_shift else None
        images = waveforms = 0
        burned_in = BurnedInCounts()
        for i, enc in enumerate(record.encounters):
            enc.time = self._shift(enc.time, pid) or enc.time
            enc.end_time = self._shift(enc.end_time, pid)
            for lab in enc.labs:
                lab.time = self._shift(lab.time, pid)
                if isinstance(lab.value, str) and any(c.isalpha() for c in lab.value):
                    lab.value = self.deid.deidentify_text(
                        lab.value, pid, reference_year=int(enc.time[:4])
                    )[0]
            for vital in enc.vitals:
                vital.time = self._shift(vital.time, pid)
            for j, image in enumerate(enc.images):
                image.time = self._shift(image.time, pid)
                new_path = self._new_asset_path(record, "images", image.path, f"{i}-{j}")
                src, dst = self.in_dir / image.path, self.out_dir / new_path
                dst.parent.mkdir(parents=True, exist_ok=True)
                if image.format == "dicom":
                    burned_in.add(
                        self.dicom.scrub_file(
                            src,
                            dst,
                            pseudonym=pid,
                            date_offset_days=offset,
                            burned_in=self.burned_in,
                        )
                    )
                    if self.burned_in is None:
                        burned_in.unchecked += 1
                else:  # re-encode: PNG text chunks can carry names and dates
                    _reencode_png(src, dst)
                image.path = new_path
                images += 1
            for j, wave in enumerate(enc.waveforms):
                wave.time = self._shift(wave.time, pid)
                new_path = self._new_asset_path(record, "waveforms", wave.path, f"{i}-{j}")
                if wave.format == "npy":  # a bad array stops here, not at a later build
                    check_ecg_file(self.in_dir / wave.path, wave.leads)
                _link_or_copy(self.in_dir / wave.path, self.out_dir / new_path)
                wave.path = new_path
                waveforms += 1
        if record.demographics.age is not None and record.demographics.age >= AGE_CAP:
            record.demographics.age = AGE_CAP  # age_band stays "80+"
        return _PatientResult(record_to_json(record), note_results, images, waveforms, burned_in)


def _reencode_png(src: Path, dst: Path) -> None:
    try:
        with PILImage.open(src) as im:
            image = im.copy()
    except (OSError, ValueError) as exc:  # PIL's UnidentifiedImageError is an OSError
        raise BadInputError(f"{src}: not a readable image ({type(exc).__name__})") from None
    with atomic_path(dst) as tmp:
        image.save(tmp, format="PNG")


def _link_or_copy(src: Path, dst: Path) -> None:
    with atomic_path(dst) as tmp:
        try:
            os.link(src, tmp)
        except OSError:  # another file system, or links not allowed
            shutil.copy2(src, tmp)


# ------------------------------------------------------------------ processes
_WORKER: RecordDeidentifier | None = None


def _init_worker(config: _RunConfig) -> None:
    global _WORKER
    _WORKER = RecordDeidentifier(config)


def _work(line: str) -> _PatientResult:
    assert _WORKER is not None
    return _WORKER.process(PatientRecord.model_validate_json(line))


def line_worker(config: _RunConfig) -> Callable[[str], _PatientResult]:
    """One Ray actor's work (:mod:`llm.data.ray_map`): a de-identifier built once, applied
    to each record line it is given."""
    worker = RecordDeidentifier(config)
    return lambda line: worker.process(PatientRecord.model_validate_json(line))


def _results(
    records: Iterator[PatientRecord], config: _RunConfig, workers: int, ray_address: str | None
) -> Iterator[_PatientResult]:
    if ray_address is not None:
        from llm.data.ray_map import map_lines_on_ray

        # the driver reads and validates every line first (counts, rejects and a bad
        # line's error as in one process); Ray's actors de-identify
        validated = [record_to_json(r) for r in records]
        yield from map_lines_on_ray(
            validated, line_worker, config, workers=workers, address=ray_address
        )
        return
    if workers <= 1:
        worker = RecordDeidentifier(config)
        for record in records:
            yield worker.process(record)
        return
    methods = multiprocessing.get_all_start_methods()
    ctx = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
    with ctx.Pool(workers, initializer=_init_worker, initargs=(config,)) as pool:
        lines = (record_to_json(r) for r in records)
        yield from pool.imap(_work, lines, chunksize=4)


def deidentify_records(
    in_path: str | Path,
    out_path: str | Path,
    *,
    strategy: Strategy = "surrogate",
    date_shift: bool = True,
    key: bytes,
    key_generated: bool = False,
    skip_invalid: bool = False,
    rejects_path: str | Path | None = None,
    workers: int = 1,
    spans_path: str | Path | None = None,
    cache_dir: Path | None = None,
    progress: Any = None,
    ner: NerMode = "statistical",
    ray_address: str | None = None,
) -> DeidSummary:
    """De-identify the records file ``in_path`` into ``out_path``.

    Args:
        in_path: records file (JSONL); asset paths are relative to its folder.
        out_path: records file to write; assets go under its folder, which must
            differ from ``in_path``'s (the originals must never be overwritten).
        strategy: ``tag`` or ``surrogate``.
        date_shift: shift dates by a per-patient offset (else dates in notes are
            tagged and structured times kept).
        key: secret for offsets, surrogates and new DICOM UIDs; never written out.
        key_generated: the key was made up for this run (recorded in the summary).
        skip_invalid: write invalid lines to ``rejects_path`` and go on.
        rejects_path: where invalid lines go.
        workers: processes to use (1 runs in this process); with ``ray_address``, the
            Ray actors (one CPU each).
        spans_path: ``phi_spans.jsonl`` to score detections against (``None``: no evaluation).
        cache_dir: spaCy pipeline cache folder.
        progress: optional callable wrapping the record iterator (a progress bar).
        ner: ``statistical`` (the pinned spaCy NER beside the rules: finds names no list
            holds, slower) or ``rules`` (patterns and name lists alone, several times faster).
        ray_address: run on Ray Data (``local``, ``auto`` or ``ray://HOST:PORT``,
            :mod:`llm.ray_cluster`); output and counts are those of the single-process run.

    Returns:
        Counts of what was done, with the evaluation when ``spans_path`` is given.

    Raises:
        BadInputError: IN missing, OUT's folder the same as IN's, bad spans file, unknown
            ``ner``, a bad ``ray_address`` or Ray not installed.
        RecordError: an invalid line when ``skip_invalid`` is false.
    """
    started = time.perf_counter()
    in_path, out_path = Path(in_path), Path(out_path)
    if not in_path.is_file():
        raise BadInputError(f"{in_path}: records file not found")
    in_dir, out_dir = in_path.parent.resolve(), out_path.parent.resolve()
    if in_dir == out_dir:
        raise BadInputError(
            f"{out_path}: OUT must be in a different folder from IN ({in_dir}): "
            "de-identified images are written beside OUT and would overwrite the originals"
        )
    if workers < 1:
        raise BadInputError(f"--workers must be at least 1, got {workers}")
    if ner not in NER_MODES:
        raise BadInputError(f"--ner must be one of {', '.join(NER_MODES)}, got {ner!r}")
    if ray_address is not None:  # before any output: a bad address or no Ray says so first
        check_ray_address(ray_address)
        import_ray()
    check_writable_dir(out_path.parent, what="de-identified records")
    if skip_invalid and rejects_path is not None:
        check_writable_dir(Path(rejects_path).parent, what="rejects file")
    gold = read_phi_spans(spans_path) if spans_path is not None else None
    ocr_missing = ocr_unavailable()  # looked up once: the summary says what it skipped
    config = _RunConfig(
        strategy,
        date_shift,
        key,
        str(in_dir),
        str(out_dir),
        str(cache_dir) if cache_dir else None,
        check_burned_in=ocr_missing is None,
        ner=ner,
    )
    stats = ReadStats(str(in_path))
    summary = DeidSummary(
        str(in_path), str(out_path), stats, strategy, date_shift, key_generated, ner=ner
    )
    summary.burned_in.skip_reason = ocr_missing
    counts: Counter[str] = Counter()
    predicted: list[NoteDetections] = []
    out_dir.mkdir(parents=True, exist_ok=True)
    with ExitStack() as files:  # every output is written atomically (llm.files.atomic_write)
        rejects_fh = None
        if skip_invalid and rejects_path is not None:
            rejects_fh = files.enter_context(atomic_write(rejects_path))
        # the rejects file sits beside the de-identified output: errors only, no raw lines
        records = iter_records(
            in_path, stats=stats, skip_invalid=skip_invalid, rejects=rejects_fh, rejects_raw=False
        )
        results = _results(records, config, workers, ray_address)
        if progress is not None:
            results = progress(results)
        with atomic_write(out_path) as fh:
            for result in results:
                fh.write(result.line + "\n")
                summary.notes += len(result.notes)
                summary.images += result.images
                summary.waveforms += result.waveforms
                summary.burned_in.add(result.burned_in)
                for note in result.notes:
                    counts.update(t for _, _, t in note.spans)
                if gold is not None:
                    predicted.extend(result.notes)
    summary.detections = dict(sorted(counts.items()))
    if gold is not None:
        summary.evaluation = evaluate_detections(gold, predicted, spans_path=str(spans_path))
    summary.seconds = time.perf_counter() - started
    return summary


def write_evaluation(evaluation: DeidEvaluation, path: Path) -> None:
    """Write ``deid_eval.json`` (metrics and counts only, no text)."""
    with atomic_write(path) as fh:
        fh.write(json.dumps(evaluation.to_dict(), indent=2) + "\n")
