"""What the FHIR and MIMIC importers share.

* :class:`SourceError`: a :class:`~llm.errors.RecordError` that can also name a
  FHIR resource (``bundles/p1.json: entry[3] (Observation/obs-7): field: ...``).
* :class:`RecordAssembler`: collects one patient's encounters and the items
  (notes, labs, vitals, diagnoses, images) that belong to them, placing items
  that name no encounter by time (see :meth:`RecordAssembler.encounters`).
* :func:`write_import`: writes the records, their asset files and the rejects,
  counting ``read = used + rejected``.
"""

from __future__ import annotations

import json
import re
import shutil
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass, field
from datetime import date, datetime, timezone
from pathlib import Path
from typing import TypeVar

from llm.data.io import ReadStats, record_to_json
from llm.data.schema import Diagnosis, Encounter, Image, Lab, Note, PatientRecord, Vital
from llm.errors import BadInputError, RecordError
from llm.files import atomic_path, atomic_write, check_writable_dir

T = TypeVar("T")
Item = Note | Lab | Vital | Diagnosis | Image

#: A progress wrapper with the signature of :func:`llm.cli.common.track`.
Progress = Callable[..., Iterator[T]]

UNASSIGNED_KIND = "unassigned"


class SourceError(RecordError):
    """A bad field in a source file, located by file, line (or entry) and field.

    Args:
        path: the source file.
        line: 1-based line number; for a FHIR bundle the 1-based entry number
            (``entry[i]`` is line ``i + 1``); 0 for the file as a whole.
        field: dotted location inside the line, entry or resource.
        message: what is wrong.
        resource: ``"Type/id"`` of the FHIR resource, when there is one.
        entry: True when ``line`` counts bundle entries rather than text lines.
    """

    def __init__(
        self,
        path: str,
        line: int,
        field: str,
        message: str,
        *,
        resource: str | None = None,
        entry: bool = False,
    ) -> None:
        super().__init__(path, line, field, message)
        self.resource = resource
        where = path
        if line > 0:
            where += f": entry[{line - 1}]" if entry else f":{line}"
        if resource:
            where += f" ({resource})"
        self.args = (f"{where}: {field}: {message}",)

    def to_dict(self) -> dict[str, object]:
        out = super().to_dict()
        if self.resource:
            out["resource"] = self.resource
        return out


def first_with_all(errors: list[RecordError]) -> RecordError:
    """The first of ``errors``, carrying all of them (how :mod:`llm.data.io` reports)."""
    first = errors[0]
    first.all = errors
    return first


def iso_time(value: object) -> str | None:
    """Normalise a FHIR/CSV time to an ISO-8601 string the record schema accepts.

    Partial FHIR dates (``2020``, ``2020-03``) become the first day of that
    year or month, since the schema needs a parseable time.

    Raises:
        ValueError: the value is not a time.
    """
    if value is None or value == "":
        return None
    if isinstance(value, datetime | date):
        return value.isoformat()
    text = str(value).strip()
    if re.fullmatch(r"\d{4}", text):
        return f"{text}-01-01"
    if re.fullmatch(r"\d{4}-\d{2}", text):
        return f"{text}-01"
    try:
        return datetime.fromisoformat(text).isoformat()
    except ValueError:
        raise ValueError("not an ISO-8601 time") from None


def time_key(value: str) -> datetime:
    """A comparable instant: aware times go to UTC, naive ones are taken as they are."""
    parsed = datetime.fromisoformat(value)
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(timezone.utc).replace(tzinfo=None)
    return parsed


def safe_name(text: str) -> str:
    """A file-name-safe form of an identifier (asset folders are named by patient id)."""
    return re.sub(r"[^A-Za-z0-9._-]", "_", text) or "_"


def _slot(enc: Encounter, item: Item) -> list[Item]:
    lists: dict[type, list[Item]] = {
        Note: enc.notes,  # type: ignore[dict-item]
        Lab: enc.labs,  # type: ignore[dict-item]
        Vital: enc.vitals,  # type: ignore[dict-item]
        Diagnosis: enc.diagnoses,  # type: ignore[dict-item]
        Image: enc.images,  # type: ignore[dict-item]
    }
    return lists[type(item)]


def nearest_encounter(encounters: list[Encounter], when: str) -> Encounter:
    """The encounter ``when`` falls in; failing that, the one whose start is closest.

    Ties go to the earlier encounter.
    """
    t = time_key(when)
    for enc in encounters:
        end = time_key(enc.end_time) if enc.end_time else time_key(enc.time)
        if time_key(enc.time) <= t <= end:
            return enc
    return min(encounters, key=lambda e: (abs(time_key(e.time) - t), time_key(e.time)))


class RecordAssembler:
    """Collect one patient's encounters and items, then order and place them.

    Items that name their encounter go there. Items that name none go to the
    encounter their time falls in, else the encounter whose start is nearest in
    time; when the patient has no encounter or the item has no time, they go to
    one synthetic encounter ``<patient_id>-unassigned`` (kind ``unassigned``)
    whose time is the earliest time among them.
    """

    def __init__(self, patient_id: str) -> None:
        self.patient_id = patient_id
        self._encounters: dict[str, Encounter] = {}
        self._floating: list[tuple[Item, str | None, Callable[[str, str], RecordError]]] = []

    def has_encounter(self, encounter_id: str) -> bool:
        """True when an encounter with this id was added."""
        return encounter_id in self._encounters

    def add_encounter(self, encounter: Encounter) -> None:
        """Add an encounter (ids must be unique; the caller checks)."""
        self._encounters[encounter.encounter_id] = encounter

    def add(
        self,
        item: Item,
        *,
        encounter_id: str | None,
        time: str | None,
        error: Callable[[str, str], RecordError],
    ) -> None:
        """Add an item to ``encounter_id`` (which must exist), or leave it to be placed.

        Args:
            item: the note, lab, vital, diagnosis or image.
            encounter_id: its encounter, or None to place it by ``time``.
            time: the item's time (used to place it).
            error: makes an error located at the item's origin, from a field
                and a message (used when it cannot be placed).
        """
        if encounter_id is not None:
            _slot(self._encounters[encounter_id], item).append(item)
        else:
            self._floating.append((item, time, error))

    def encounters(self) -> tuple[list[Encounter], list[RecordError]]:
        """Place the floating items and return the encounters in time order.

        Returns:
            The encounters (sorted by start time, then id) and the errors of
            items that could not be placed at all (no encounter, no time anywhere).
        """
        real = list(self._encounters.values())
        unassigned: list[Item] = []
        times: list[str] = []
        for item, when, _ in self._floating:
            if when is not None and real:
                _slot(nearest_encounter(real, when), item).append(item)
            else:
                unassigned.append(item)
                if when is not None:
                    times.append(when)
        errors: list[RecordError] = []
        if unassigned:
            if times or real:
                start = min(times, key=time_key) if times else min(real, key=_start).time
                extra = Encounter(
                    encounter_id=f"{self.patient_id}-unassigned", time=start, kind=UNASSIGNED_KIND
                )
                for item in unassigned:
                    _slot(extra, item).append(item)
                real.append(extra)
            else:
                errors = [
                    make(
                        "<time>",
                        "names no encounter and has no time, and the patient has no "
                        "encounter: it cannot be placed",
                    )
                    for _, _, make in self._floating
                ]
        # on a tied start the synthetic encounter goes first: the last one is the index
        order = sorted(
            real, key=lambda e: (time_key(e.time), e.kind != UNASSIGNED_KIND, e.encounter_id)
        )
        return order, errors


def _start(enc: Encounter) -> datetime:
    return time_key(enc.time)


@dataclass
class PendingAsset:
    """An asset file to write beside the records once its patient is accepted.

    Exactly one of ``data`` (bytes to write) and ``source`` (file to copy) is set.
    """

    rel_path: str
    data: bytes | None = None
    source: Path | None = None


@dataclass
class ImportedPatient:
    """A valid record and the asset files it refers to."""

    record: PatientRecord
    assets: list[PendingAsset] = field(default_factory=list)


@dataclass
class RejectedUnit:
    """A patient (or a file or row tied to no patient) that could not be imported."""

    patient_id: str | None
    errors: list[RecordError]


Outcome = ImportedPatient | RejectedUnit


@dataclass
class ImportReport:
    """What an import did.

    ``stats.read`` counts patients found (plus files or rows that belong to no
    patient and were rejected on their own); ``skipped`` counts source items
    the record schema has no place for, by kind, so nothing vanishes unseen.
    """

    stats: ReadStats
    out_path: Path
    assets_written: int = 0
    rejects_path: Path | None = None
    skipped: Counter[str] = field(default_factory=Counter)

    @property
    def assets_dir(self) -> Path:
        """Folder of the asset files (beside the records file)."""
        return assets_dir_for(self.out_path)


def assets_dir_for(out_path: Path) -> Path:
    """``<out_stem>_assets`` beside the records file."""
    return out_path.parent / f"{out_path.stem}_assets"


def check_import_outputs(out_path: Path, rejects_path: Path | None) -> None:
    """Before any input is read: the records, assets and rejects files can be written.

    Raises:
        BadInputError: naming the folder that cannot be written, or an ``out``
            that is a folder.
    """
    if out_path.is_dir():
        raise BadInputError(f"--out {out_path}: is a folder; give the records file to write")
    check_writable_dir(out_path.parent, what="records file")
    if rejects_path is not None:
        check_writable_dir(rejects_path.parent, what="rejects file")


def write_import(
    outcomes: Iterable[Outcome],
    *,
    report: ImportReport,
    skip_invalid: bool,
) -> ImportReport:
    """Write imported records (and their assets) and rejected units, counting both.

    Every file is written atomically (:func:`llm.files.atomic_write`): the
    records file is renamed into place at the end, so a failed import leaves
    an earlier records file as it was and never one that looks complete.

    Args:
        outcomes: per patient, a record with its assets or the errors that reject it.
        report: where counts go; its ``out_path`` and ``rejects_path`` say where to write.
        skip_invalid: go on past rejected units instead of raising the first error.

    Returns:
        ``report``, filled in.

    Raises:
        RecordError: the first error of the first rejected unit, unless skipping
            (all of that unit's errors are in its ``all`` attribute).
        BadInputError: the input held no patients at all, or an output cannot
            be written (disk full).
    """
    out = report.out_path
    stats = report.stats
    with ExitStack() as files:
        fh = files.enter_context(atomic_write(out))
        rejects = None
        if skip_invalid and report.rejects_path is not None:
            rejects = files.enter_context(atomic_write(report.rejects_path))
        for outcome in outcomes:
            stats.read += 1
            if isinstance(outcome, RejectedUnit):
                if not skip_invalid:
                    raise first_with_all(outcome.errors)
                stats.rejected += 1
                stats.errors.extend(outcome.errors)
                if rejects is not None:
                    for err in outcome.errors:
                        row = {**err.to_dict(), "patient_id": outcome.patient_id}
                        rejects.write(json.dumps(row, ensure_ascii=False) + "\n")
                continue
            for asset in outcome.assets:
                _write_asset(out.parent, asset)
                report.assets_written += 1
            fh.write(record_to_json(outcome.record) + "\n")
            stats.used += 1
        if stats.read == 0:  # raised inside: no records file is written
            raise BadInputError(f"{stats.path}: no patients found; nothing to import")
    stats.check()
    return report


def _write_asset(base: Path, asset: PendingAsset) -> None:
    with atomic_path(base / asset.rel_path) as target:
        if asset.data is not None:
            target.write_bytes(asset.data)
        elif asset.source is not None:
            shutil.copyfile(asset.source, target)
