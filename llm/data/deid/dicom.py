"""Remove PHI from DICOM headers, after the DICOM PS3.15 Annex E basic profile.

What is done, as far as practical without a full profile engine:

* ``PatientName`` and ``PatientID`` become the record's pseudonymous patient id.
* Dates (every ``DA`` and ``DT`` element, nested sequences included) are moved
  by the patient's offset, or emptied when dates are not shifted;
  ``PatientBirthDate`` is emptied either way.
* Identifying elements of the profile (addresses, phone numbers, other ids,
  institution, station, physicians and operators, free-text comments and
  descriptions, accession and study ids) are removed, or emptied where the
  IOD needs them present. Every other person name (``PN``) is emptied.
* Instance UIDs are replaced by UIDs derived from an HMAC of the original, so
  the same study keeps one (new) UID across files; class UIDs stay.
* Private tags are removed. Ages over 89 become ``090Y``.
* ``PatientIdentityRemoved`` is set to ``YES`` with the method described.

Pixel data is not touched here: :meth:`DicomScrubber.scrub_file` hands it to
:mod:`llm.data.deid.burned_in` (OCR) when given a redactor.
"""

from __future__ import annotations

import hashlib
import hmac
import re
from datetime import date, timedelta
from pathlib import Path

import pydicom
from pydicom.dataelem import DataElement
from pydicom.dataset import Dataset
from pydicom.errors import InvalidDicomError

from llm.data.deid.burned_in import BurnedInCounts, BurnedInRedactor, header_phi_terms
from llm.errors import BadInputError
from llm.files import atomic_path

# Type 2 in common IODs: must stay present, so they are emptied rather than removed.
EMPTIED = (
    "PatientBirthDate",
    "PatientSex",
    "AccessionNumber",
    "ReferringPhysicianName",
    "StudyID",
)
REMOVED = (
    "OtherPatientIDs", "OtherPatientIDsSequence", "OtherPatientNames", "PatientBirthName",
    "PatientMotherBirthName", "PatientAddress", "PatientTelephoneNumbers",
    "PatientTelecomInformation", "MilitaryRank", "BranchOfService", "MedicalRecordLocator",
    "EthnicGroup", "Occupation", "AdditionalPatientHistory", "PatientComments",
    "PatientBirthTime", "PatientReligiousPreference", "CountryOfResidence", "RegionOfResidence",
    "CurrentPatientLocation", "PatientState", "PatientInsurancePlanCodeSequence",
    "InsurancePlanIdentification", "IssuerOfPatientID", "ResponsiblePerson",
    "ResponsibleOrganization", "InstitutionName", "InstitutionAddress",
    "InstitutionalDepartmentName", "InstitutionCodeSequence", "StationName",
    "DeviceSerialNumber", "PerformingPhysicianName", "NameOfPhysiciansReadingStudy",
    "PhysiciansOfRecord", "OperatorsName", "RequestingPhysician",
    "ScheduledPerformingPhysicianName", "ReferringPhysicianAddress",
    "ReferringPhysicianTelephoneNumbers", "ConsultingPhysicianName",
    "RequestAttributesSequence", "ImageComments", "StudyComments",
    "AdmittingDiagnosesDescription", "DerivationDescription", "StudyDescription",
    "SeriesDescription", "ProtocolName", "PerformedProcedureStepID",
    "PerformedProcedureStepDescription", "ScheduledProcedureStepID", "RequestedProcedureID",
    "AdmissionID", "IssuerOfAdmissionID", "ServiceEpisodeID", "PatientTransportArrangements",
    "PersonAddress", "PersonTelephoneNumbers", "TextComments",
    "FillerOrderNumberImagingServiceRequest", "PlacerOrderNumberImagingServiceRequest",
)  # fmt: skip
KEPT_UIDS = (
    "SOPClassUID",
    "TransferSyntaxUID",
    "MediaStorageSOPClassUID",
    "ImplementationClassUID",
)
AGE_CAP = 90


def _shift_da(value: str, days: int) -> str:
    d = date(int(value[:4]), int(value[4:6]), int(value[6:8])) + timedelta(days=days)
    return d.strftime("%Y%m%d") + value[8:]


class DicomScrubber:
    """Scrubs DICOM files for one run.

    Args:
        key: the run's secret; new UIDs are derived from it.
    """

    def __init__(self, key: bytes) -> None:
        self._key = key

    def new_uid(self, uid: str) -> str:
        """A valid UID (``2.25.<decimal>``) derived from ``uid``; equal inputs, equal outputs."""
        digest = hmac.new(self._key, f"uid\x1f{uid}".encode(), hashlib.sha256).digest()
        return f"2.25.{int.from_bytes(digest[:16], 'big')}"

    def scrub_dataset(
        self, ds: Dataset, *, pseudonym: str, date_offset_days: int | None
    ) -> Dataset:
        """Remove the PHI of ``ds`` in place and return it.

        Args:
            ds: a dataset read by pydicom.
            pseudonym: what ``PatientName`` and ``PatientID`` become.
            date_offset_days: the patient's date shift, or ``None`` to empty dates.

        Returns:
            ``ds``, scrubbed.
        """
        ds.remove_private_tags()
        for keyword in REMOVED:
            if keyword in ds:
                delattr(ds, keyword)
        ds.walk(lambda d, elem: self._element(d, elem, date_offset_days))
        for keyword in EMPTIED:
            if keyword in ds:
                ds.data_element(keyword).value = ""  # type: ignore[union-attr]
        ds.PatientName = pseudonym
        ds.PatientID = pseudonym
        age = str(ds.get("PatientAge", "") or "")
        m = re.fullmatch(r"(\d{3})Y", age)
        if m and int(m.group(1)) > AGE_CAP - 1:
            ds.PatientAge = f"{AGE_CAP:03d}Y"
        ds.PatientIdentityRemoved = "YES"
        ds.DeidentificationMethod = "clinical-llm basic profile" + (
            "; dates shifted" if date_offset_days is not None else "; dates removed"
        )
        ds.LongitudinalTemporalInformationModified = (
            "MODIFIED" if date_offset_days is not None else "REMOVED"
        )
        meta = getattr(ds, "file_meta", None)
        if meta is not None and "SOPInstanceUID" in ds:
            meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        return ds

    def _element(self, ds: Dataset, elem: DataElement, days: int | None) -> None:
        if elem.VR in ("DA", "DT") and elem.value:
            values = elem.value if elem.VM > 1 else [elem.value]
            if days is None:
                elem.value = ""
                return
            try:
                shifted = [_shift_da(str(v), days) for v in values]
            except (ValueError, IndexError):
                elem.value = ""  # an unreadable date cannot be shifted, so it goes
                return
            elem.value = shifted if elem.VM > 1 else shifted[0]
        elif elem.VR == "PN" and elem.keyword != "PatientName":
            elem.value = ""
        elif (
            elem.VR == "UI"
            and elem.value
            and elem.keyword not in KEPT_UIDS
            and not elem.keyword.endswith("ClassUID")
        ):
            values = elem.value if elem.VM > 1 else [elem.value]
            new = [self.new_uid(str(v)) for v in values]
            elem.value = new if elem.VM > 1 else new[0]

    def scrub_file(
        self,
        src: Path,
        dst: Path,
        *,
        pseudonym: str,
        date_offset_days: int | None,
        burned_in: BurnedInRedactor | None = None,
    ) -> BurnedInCounts:
        """Read ``src``, scrub it and write the result to ``dst``.

        Args:
            src: the original DICOM file.
            dst: where the scrubbed copy goes (parent folders are created).
            pseudonym: what ``PatientName`` and ``PatientID`` become.
            date_offset_days: the patient's date shift, or ``None`` to empty dates.
            burned_in: black out PHI text in the pixels with it (the original header's
                values are read first); ``None`` leaves pixel data unchanged.

        Returns:
            What the burned-in text check did (all zero when ``burned_in`` is ``None``).

        Raises:
            BadInputError: ``src`` is not a DICOM file.
        """
        try:
            ds = pydicom.dcmread(src)
        except (InvalidDicomError, OSError) as exc:
            raise BadInputError(
                f"{src}: not a readable DICOM file ({type(exc).__name__})"
            ) from None
        terms = header_phi_terms(ds) if burned_in is not None else frozenset()
        self.scrub_dataset(ds, pseudonym=pseudonym, date_offset_days=date_offset_days)
        counts = BurnedInCounts()
        if burned_in is not None:
            counts = burned_in.redact_dataset(ds, terms)
            if counts.checked:
                ds.DeidentificationMethod += "; burned-in OCR"  # LO: 64 characters at most
        with atomic_path(dst) as tmp:  # an interrupted write leaves no half a file
            ds.save_as(tmp)
        return counts
