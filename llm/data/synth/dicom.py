"""Writing a synthetic chest radiograph as a real DICOM file (Digital X-Ray, DX).

UIDs come from :func:`pydicom.uid.generate_uid` with fixed entropy sources
(seed, patient, image), and every date is the study's own, so the same seed
always gives the same bytes.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from pathlib import Path

import numpy as np
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    DigitalXRayImageStorageForPresentation,
    ExplicitVRLittleEndian,
    generate_uid,
)

from llm.files import atomic_path


@dataclass(frozen=True)
class DicomPatient:
    """The patient and study tags of one image."""

    name: str  # DICOM person name, "Last^First"
    mrn: str
    sex: str  # F, M or O
    age_years: int
    birth_date: date
    study_time: datetime
    accession: str
    institution: str
    referring_physician: str  # "Last^First"
    view: str  # PA or AP


def _da(d: date) -> str:
    return f"{d.year:04d}{d.month:02d}{d.day:02d}"


def write_chest_dicom(
    path: Path, pixels: np.ndarray, patient: DicomPatient, *, uid_key: str
) -> None:
    """Write ``pixels`` (uint16, 12 bits stored) as a DX chest image.

    Args:
        path: output ``.dcm`` file (parent folders are created).
        pixels: 2-D uint16 image, MONOCHROME2.
        patient: patient and study tags.
        uid_key: a string unique to this image within the cohort (seed, patient,
            image); study, series and instance UIDs are derived from it.
    """
    study_uid = generate_uid(entropy_srcs=[uid_key, "study"])
    series_uid = generate_uid(entropy_srcs=[uid_key, "series"])
    instance_uid = generate_uid(entropy_srcs=[uid_key, "instance"])

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = instance_uid
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID

    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID = DigitalXRayImageStorageForPresentation
    ds.SOPInstanceUID = instance_uid
    ds.StudyInstanceUID = study_uid
    ds.SeriesInstanceUID = series_uid
    ds.ImageType = ["ORIGINAL", "PRIMARY"]
    ds.PresentationIntentType = "FOR PRESENTATION"
    ds.Modality = "DX"
    ds.BodyPartExamined = "CHEST"
    ds.ViewPosition = patient.view
    # viewed facing the patient: rows run towards the patient's left, columns towards the feet
    ds.PatientOrientation = ["L", "F"]
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = _da(patient.study_time)
    ds.StudyTime = ds.SeriesTime = ds.ContentTime = patient.study_time.strftime("%H%M%S")
    ds.AccessionNumber = patient.accession
    ds.StudyID = patient.accession[-8:]
    ds.SeriesNumber = 1
    ds.InstanceNumber = 1
    ds.StudyDescription = f"XR CHEST 1 VIEW {patient.view}"
    ds.InstitutionName = patient.institution
    ds.ReferringPhysicianName = patient.referring_physician
    ds.Manufacturer = "clinical-llm synthetic"
    ds.PatientName = patient.name
    ds.PatientID = patient.mrn
    ds.PatientSex = patient.sex
    ds.PatientAge = f"{min(patient.age_years, 999):03d}Y"
    ds.PatientBirthDate = _da(patient.birth_date)

    rows, cols = pixels.shape
    ds.Rows, ds.Columns = rows, cols
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated = 16
    ds.BitsStored = 12
    ds.HighBit = 11
    ds.PixelRepresentation = 0
    ds.WindowCenter = 2048
    ds.WindowWidth = 4096
    ds.PixelData = np.ascontiguousarray(pixels, dtype="<u2").tobytes()

    with atomic_path(path) as tmp:
        ds.save_as(tmp, enforce_file_format=True)
