"""Import FHIR R4 Bundles (or bulk-export NDJSON) into patient records.

Every ``*.json`` file of the input folder is one Bundle; its entries are
validated one by one with the R4 models of ``fhir.resources`` (its ``R4B``
package, which matches R4 for every resource read here) so that an error
names the file, the entry and the field. All ``*.ndjson`` files of the folder
together form one more pool of resources (one resource a line). References
are resolved within a Bundle (or within the NDJSON pool): by ``fullUrl``, by
``Type/id``, or by the ``Type/id`` tail of an absolute URL.

One record is made per Patient resource. Rules (tables in ``docs/importers.md``):

* A bad entry rejects the patient it belongs to (its ``subject``, ``patient``
  or ``beneficiary``); an entry tied to no patient, or a file that cannot be
  read at all, is rejected on its own and counted as one more read unit.
* A clinical resource with no patient reference belongs to the only patient
  of its Bundle; with several patients that is an error.
* References to a patient, encounter, condition or media not in the Bundle are
  errors.
* Resource types the record has no place for (Procedure, Claim, …) and
  observations of other categories are counted in :attr:`ImportReport.skipped`.

The whole of one Bundle (or of the NDJSON pool) is held in memory at a time.
Reading and validation: :mod:`llm.data.importers.fhir_read`; resource
mapping: :mod:`llm.data.importers.fhir_mapping`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlparse

from pydantic import ValidationError

from llm.data.importers import fhir_mapping as fm
from llm.data.importers.common import (
    ImportedPatient,
    ImportReport,
    Outcome,
    PendingAsset,
    Progress,
    RecordAssembler,
    RejectedUnit,
    assets_dir_for,
    check_import_outputs,
    safe_name,
    write_import,
)
from llm.data.importers.fhir_demographics import demographics_of
from llm.data.importers.fhir_read import (
    FhirEntry,
    Pool,
    Resolver,
    fhir_sources,
    raw_ref,
    read_bundle,
    read_ndjson,
)
from llm.data.io import ReadStats, format_loc
from llm.data.schema import Demographics, Image, PatientRecord
from llm.errors import RecordError

# Resource types mapped into the record; every other type is counted as skipped.
MAPPED = {
    "Patient",
    "Encounter",
    "Observation",
    "Condition",
    "DocumentReference",
    "DiagnosticReport",
    "Media",
    "Coverage",
}
_PATIENT_REFS = ("subject", "patient", "beneficiary")


@dataclass
class _PatientWork:
    entry: FhirEntry
    patient_id: str
    members: list[FhirEntry] = field(default_factory=list)
    errors: list[RecordError] = field(default_factory=list)


class FhirImporter:
    """Turns FHIR pools into import outcomes (records or rejected units).

    Args:
        out_path: the records file; assets go to ``<out_stem>_assets/`` beside it.
    """

    def __init__(self, out_path: Path) -> None:
        self.assets_prefix = assets_dir_for(out_path).name
        self.skipped: Counter[str] = Counter()
        self._seen_patients: dict[str, str] = {}

    def outcomes(self, pool: Pool) -> Iterator[Outcome]:
        """Records (or rejections) of one pool, in the order their Patient entries appear."""
        if pool.errors:
            yield RejectedUnit(None, pool.errors)
            return
        resolver = Resolver(pool.entries)
        patients: dict[int, _PatientWork] = {}
        units: list[tuple[int, _PatientWork | RejectedUnit]] = []
        for entry in pool.entries:
            if entry.rtype == "Patient":
                work = self._patient_work(entry)
                patients[id(entry)] = work
                units.append((entry.line, work))
        only = next(iter(patients.values())) if len(patients) == 1 else None
        for entry in pool.entries:
            if entry.rtype == "Patient":
                continue
            owner, problem = self._owner(entry, resolver, patients, only)
            if owner is not None:
                owner.members.append(entry)
                owner.errors += entry.errors
            elif entry.errors or problem:
                units.append((entry.line, RejectedUnit(None, entry.errors + problem)))
            else:
                self.skipped[entry.rtype] += 1
        for _, unit in sorted(units, key=lambda u: u[0]):
            if isinstance(unit, RejectedUnit):
                yield unit
            else:
                yield self._build(unit, resolver)

    def _patient_work(self, entry: FhirEntry) -> _PatientWork:
        pid = entry.rid
        if not pid:
            idents = entry.raw.get("identifier") or []
            first = idents[0] if isinstance(idents, list) and idents else {}
            pid = first.get("value") if isinstance(first, dict) else None
        work = _PatientWork(entry, str(pid or ""), errors=list(entry.errors))
        if not pid:
            work.errors.append(entry.error("id", "a Patient needs an id or an identifier.value"))
        elif pid in self._seen_patients:
            work.errors.append(
                entry.error("id", f"patient {pid!r} already read from {self._seen_patients[pid]}")
            )
        else:
            self._seen_patients[pid] = entry.path
        return work

    def _owner(
        self,
        entry: FhirEntry,
        resolver: Resolver,
        patients: dict[int, _PatientWork],
        only: _PatientWork | None,
    ) -> tuple[_PatientWork | None, list[RecordError]]:
        """The patient an entry belongs to, or the errors that say why none."""
        mapped = entry.rtype in MAPPED
        for key in _PATIENT_REFS:
            ref = raw_ref(entry.raw, key)
            if ref is None:
                continue
            target = resolver.resolve(ref)
            if target is not None and id(target) in patients:
                return patients[id(target)], []
            if not mapped and not entry.errors:
                return None, []  # unmapped: its references are not ours to check
            return None, [
                entry.error(
                    f"{key}.reference", f"refers to {ref!r}, which is no Patient in this bundle"
                )
            ]
        if mapped and only is not None:
            return only, []
        if mapped:
            n = len(patients)
            return None, [
                entry.error(
                    "subject",
                    f"missing, and the bundle holds {n} patients: "
                    "cannot tell whose resource this is",
                )
            ]
        return None, []

    def _build(self, work: _PatientWork, resolver: Resolver) -> Outcome:
        if work.errors:
            return RejectedUnit(work.patient_id or None, work.errors)
        builder = _PatientBuilder(work, resolver, self)
        return builder.build()


class _PatientBuilder:
    """Maps the resources of one patient; collects every error instead of stopping."""

    def __init__(self, work: _PatientWork, resolver: Resolver, importer: FhirImporter) -> None:
        self.work = work
        self.resolver = resolver
        self.importer = importer
        self.pid = work.patient_id
        self.assembler = RecordAssembler(self.pid)
        self.errors: list[RecordError] = []
        self.assets: list[PendingAsset] = []
        self.by_type: dict[str, list[FhirEntry]] = {}
        for e in work.members:
            self.by_type.setdefault(e.rtype, []).append(e)

    def build(self) -> Outcome:
        for rtype, entries in self.by_type.items():
            if rtype not in MAPPED:
                self.importer.skipped[rtype] += len(entries)
        primary, condition_encounter = self._encounters()
        for entry in self.by_type.get("Observation", []):
            self._guard(entry, self._observation)
        for entry in self.by_type.get("Condition", []):
            self._guard(entry, lambda e: self._condition(e, primary, condition_encounter))
        for entry in self.by_type.get("DocumentReference", []):
            self._guard(entry, self._document)
        media_encounter: dict[int, str] = {}
        for entry in self.by_type.get("DiagnosticReport", []):
            self._guard(entry, lambda e: self._report(e, media_encounter))
        for entry in self.by_type.get("Media", []):
            self._guard(entry, lambda e: self._media(e, media_encounter.get(id(e))))
        encounters, place_errors = self.assembler.encounters()
        self.errors += place_errors
        patient = self.work.entry
        demographics = Demographics()
        if not self.errors:
            try:
                demographics = demographics_of(
                    patient.resource, self.by_type.get("Coverage", []), encounters
                )
            except fm.FieldError as exc:
                self.errors.append(patient.error(exc.field, exc.message))
            except ValidationError as exc:  # e.g. an age over 130 from a wrong birthDate
                self.errors += [
                    patient.error(f"<demographics>.{format_loc(tuple(e['loc']))}", e["msg"])
                    for e in exc.errors()
                ]
        if self.errors:
            return RejectedUnit(self.pid, self.errors)
        try:
            record = PatientRecord(
                patient_id=self.pid, demographics=demographics, encounters=encounters, source="fhir"
            )
        except ValidationError as exc:
            return RejectedUnit(
                self.pid,
                [
                    patient.error(f"<record>.{format_loc(tuple(e['loc']))}", e["msg"])
                    for e in exc.errors()
                ],
            )
        return ImportedPatient(record, self.assets)

    def _guard(self, entry: FhirEntry, fn: Any) -> None:
        try:
            fn(entry)
        except fm.FieldError as exc:
            self.errors.append(entry.error(exc.field, exc.message))

    def _ref(self, entry: FhirEntry, ref: str | None, rtype: str, field_: str) -> FhirEntry | None:
        """Resolve a reference that must point to a ``rtype`` of this patient."""
        if not ref:
            return None
        target = self.resolver.resolve(ref)
        if target is None or target.rtype != rtype:
            raise fm.FieldError(field_, f"refers to {ref!r}, which is no {rtype} in this bundle")
        if target not in self.work.members and target is not self.work.entry:
            raise fm.FieldError(field_, f"refers to {ref!r}, which belongs to another patient")
        return target

    def _encounter_id(self, entry: FhirEntry, ref: str | None, field_: str) -> str | None:
        target = self._ref(entry, ref, "Encounter", field_)
        if target is None:
            return None
        if target.resource is None or not self.assembler.has_encounter(target.resource.id):
            raise fm.FieldError(field_, f"refers to {ref!r}, an encounter that could not be read")
        return str(target.resource.id)

    def _encounters(self) -> tuple[dict[int, bool], dict[int, str]]:
        primary: dict[int, bool] = {}
        condition_encounter: dict[int, str] = {}
        entries = self.by_type.get("Encounter", [])
        for entry in entries:
            self._guard(entry, lambda e: self.assembler.add_encounter(fm.map_encounter(e.resource)))
        for entry in entries:

            def link(e: FhirEntry) -> None:
                for i, ref, is_primary in fm.encounter_primary_conditions(e.resource):
                    cond = self._ref(e, ref, "Condition", f"diagnosis[{i}].condition.reference")
                    if cond is not None:
                        primary[id(cond)] = primary.get(id(cond), False) or is_primary
                        condition_encounter.setdefault(id(cond), str(e.resource.id))

            if self.assembler.has_encounter(str(entry.resource.id)):
                self._guard(entry, link)
        return primary, condition_encounter

    def _observation(self, entry: FhirEntry) -> None:
        res = entry.resource
        cats = fm.concept_codes(res.category)
        enc = self._encounter_id(
            entry, res.encounter and res.encounter.reference, "encounter.reference"
        )
        items: list[Any]
        if "laboratory" in cats:
            items = fm.map_labs(res)
            kind = "Observation[laboratory, no value]"
        elif "vital-signs" in cats:
            items = fm.map_vitals(res)
            code, _ = fm.pick_coding(res.code, fm.LOINC)
            kind = f"Observation[vital-signs {code}]"
        else:
            items = []
            kind = f"Observation[{', '.join(sorted(cats)) or 'no category'}]"
        if not items:
            self.importer.skipped[kind] += 1
        for item in items:
            self.assembler.add(item, encounter_id=enc, time=item.time, error=entry.error)

    def _condition(
        self, entry: FhirEntry, primary: dict[int, bool], condition_encounter: dict[int, str]
    ) -> None:
        res = entry.resource
        diagnosis = fm.map_condition(res, primary.get(id(entry), False))
        enc = self._encounter_id(
            entry, res.encounter and res.encounter.reference, "encounter.reference"
        ) or condition_encounter.get(id(entry))
        self.assembler.add(
            diagnosis, encounter_id=enc, time=fm.condition_time(res), error=entry.error
        )

    def _document(self, entry: FhirEntry) -> None:
        res = entry.resource
        refs = res.context.encounter if res.context is not None else None
        enc = self._encounter_id(
            entry, refs[0].reference if refs else None, "context.encounter[0].reference"
        )
        notes = fm.map_document_reference(res)
        if not notes:
            self.importer.skipped["DocumentReference[no inline text/plain]"] += 1
        for note in notes:
            self.assembler.add(note, encounter_id=enc, time=note.time, error=entry.error)

    def _report(self, entry: FhirEntry, media_encounter: dict[int, str]) -> None:
        res = entry.resource
        enc = self._encounter_id(
            entry, res.encounter and res.encounter.reference, "encounter.reference"
        )
        for i, link in enumerate(res.media or []):
            media = self._ref(entry, link.link.reference, "Media", f"media[{i}].link.reference")
            if media is not None and enc is not None:
                media_encounter.setdefault(id(media), enc)
        notes = fm.map_report_notes(res)
        if not notes and not res.media:
            self.importer.skipped["DiagnosticReport[no presentedForm text]"] += 1
        for note in notes:
            self.assembler.add(note, encounter_id=enc, time=note.time, error=entry.error)

    def _media(self, entry: FhirEntry, report_encounter: str | None) -> None:
        res = entry.resource
        enc = (
            self._encounter_id(
                entry, res.encounter and res.encounter.reference, "encounter.reference"
            )
            or report_encounter
        )
        att = res.content
        fmt = fm.IMAGE_TYPES.get(att.contentType or "")
        if fmt is None:
            self.importer.skipped[f"Media[{att.contentType or 'no contentType'}]"] += 1
            return
        if att.data is not None:
            data, source = bytes(att.data), None
        elif att.url:
            source = self._local_file(entry, att.url)
            data = source.read_bytes()
        else:
            raise fm.FieldError("content", "has neither data nor url")
        checked = fm.check_image(
            data, att.contentType, "content.data" if source is None else "content.url"
        )
        modality, _ = fm.pick_coding(res.modality)
        view, view_display = fm.pick_coding(res.view)
        ext = "dcm" if checked.format == "dicom" else "png"
        rel = f"{self.importer.assets_prefix}/{safe_name(self.pid)}/{safe_name(str(res.id))}.{ext}"
        image = Image(
            path=rel,
            modality=modality or checked.modality or "OT",
            format="dicom" if checked.format == "dicom" else "png",
            image_id=res.id,
            view=view_display or view,
            time=fm.media_time(res),
        )
        self.assets.append(PendingAsset(rel, data=data if source is None else None, source=source))
        self.assembler.add(image, encounter_id=enc, time=image.time, error=entry.error)

    def _local_file(self, entry: FhirEntry, url: str) -> Path:
        parsed = urlparse(url)
        if parsed.scheme in ("http", "https", "ftp"):
            raise fm.FieldError(
                "content.url",
                "remote URLs are not fetched (clinical data stays "
                "on this machine); inline the data or use a file",
            )
        rel = unquote(parsed.path) if parsed.scheme == "file" else url
        path = Path(rel)
        if not path.is_absolute():
            path = Path(entry.path).parent / path
        if not path.is_file():
            raise fm.FieldError("content.url", f"file not found: {path}")
        return path


def import_fhir(
    bundle_dir: Path,
    out_path: Path,
    *,
    skip_invalid: bool = False,
    rejects_path: Path | None = None,
    progress: Progress[Any] | None = None,
) -> ImportReport:
    """Import every Bundle (and the NDJSON pool) of ``bundle_dir`` into ``out_path``.

    Args:
        bundle_dir: folder of ``*.json`` Bundles and/or ``*.ndjson`` resource files.
        out_path: records file to write (JSONL); image assets go to
            ``<out_stem>_assets/<patient_id>/`` beside it.
        skip_invalid: reject bad patients (and unreadable files) and go on.
        rejects_path: where rejected units' errors go (JSONL), when skipping.
        progress: wraps the per-file loop to show progress (``track``-like).

    Returns:
        Counts (patients read = used + rejected), skipped resource kinds, paths.

    Raises:
        BadInputError: the folder is missing or empty.
        RecordError: the first bad entry, unless ``skip_invalid``.
    """
    check_import_outputs(out_path, rejects_path)
    bundles, ndjson = fhir_sources(bundle_dir)
    importer = FhirImporter(out_path)
    report = ImportReport(ReadStats(str(bundle_dir)), out_path, rejects_path=rejects_path)

    def pools() -> Iterator[Pool]:
        files: list[Path | list[Path]] = [*bundles, *([ndjson] if ndjson else [])]
        items = progress(files, description="FHIR files", total=len(files)) if progress else files
        for item in items:
            yield read_ndjson(item) if isinstance(item, list) else read_bundle(item)

    def outcomes() -> Iterator[Outcome]:
        for pool in pools():
            yield from importer.outcomes(pool)

    write_import(outcomes(), report=report, skip_invalid=skip_invalid)
    report.skipped = importer.skipped
    return report
