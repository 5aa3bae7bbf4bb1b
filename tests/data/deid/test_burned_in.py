"""PHI text burned into DICOM pixels: blacked out with tesseract, reported as skipped without it.

The images are real DICOMs with PHI burned into the pixels, from pydicom's
``deid-data`` package (a test dependency): two ultrasounds, greyscale and RGB,
with name, ids, birth date, study date and institution printed across the top,
and a JPEG-compressed CT with no text at all.
"""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pydicom
import pytest

from llm.cli import main
from llm.data.deid.burned_in import (
    OcrWord,
    header_phi_terms,
    ocr_image,
    ocr_unavailable,
    ocr_words,
    phi_words,
)
from llm.data.deid.records import DeidSummary, deidentify_records
from tests.data.deid.conftest import KEY
from tests.real_components import import_or_skip, requires, skip_without

deid_data = import_or_skip("deid_data", "deid-data")
DATA = Path(deid_data.__file__).parent / "data"

requires_tesseract = requires("tesseract", ocr_unavailable())

# file in deid-data -> PHI words tesseract reads in its pixels (checked before redaction too)
BURNED_IN = {
    "ultrasounds/GREYSCALE_IMAGE.dcm": ["PATIENTFI", "00079241539", "08/29/1951", "03/02/2017"],
    "ultrasounds/RGB_IMAGE.dcm": ["ZZZDOWNTIME", "00047431395", "120907058", "4/14/2020"],
}
NO_TEXT = "humans/ctbrain1.dcm"  # JPEG Baseline, a drawing without any text
PID = "P000042"


def _read_text(path: Path) -> str:
    ds = pydicom.dcmread(path)
    return " ".join(
        w.text for w in ocr_words(ocr_image(ds.pixel_array, ds.PhotometricInterpretation))
    )


@dataclass
class Run:
    src: Path
    out: Path
    summary: DeidSummary


def _records(root: Path) -> Path:
    images = []
    for i, name in enumerate([*BURNED_IN, NO_TEXT]):
        dst = root / "images" / Path(name).name
        dst.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(DATA / name, dst)
        images.append(
            {"path": f"images/{dst.name}", "modality": "US", "format": "dicom", "image_id": f"I{i}"}
        )
    record = {
        "patient_id": PID,
        "demographics": {"sex": "female", "age": 70},
        "encounters": [
            {"encounter_id": "E1", "time": "2131-03-14T09:00:00", "notes": [], "images": images}
        ],
    }
    path = root / "records.jsonl"
    path.write_text(json.dumps(record) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory, spacy_cache: Path) -> Run:
    """``data deid`` (the library) on one record pointing at the three DICOMs."""
    if ocr_unavailable() is not None:
        skip_without("tesseract", "tesseract not installed")
    root = tmp_path_factory.mktemp("burned-in")
    records = _records(root / "in")
    out = root / "out" / "records.jsonl"
    summary = deidentify_records(records, out, strategy="tag", key=KEY, cache_dir=spacy_cache)
    return Run(root / "in", root / "out", summary)


# ------------------------------------------------------------------ with tesseract
@requires_tesseract
@pytest.mark.parametrize("name", list(BURNED_IN))
def test_burned_in_phi_is_gone_after_redaction(run: Run, name: str) -> None:
    before = _read_text(run.src / "images" / Path(name).name)
    after = _read_text(run.out / "images" / Path(name).name)
    for word in BURNED_IN[name]:
        assert word in before, f"OCR no longer reads {word!r} in the original: test premise broken"
        assert word not in after


@requires_tesseract
@pytest.mark.parametrize("name", list(BURNED_IN))
def test_pixels_change_where_the_text_was_and_nowhere_much_else(run: Run, name: str) -> None:
    src = pydicom.dcmread(run.src / "images" / Path(name).name).pixel_array
    out = pydicom.dcmread(run.out / "images" / Path(name).name).pixel_array
    assert out.shape == src.shape and out.dtype == src.dtype
    changed = np.any(out != src, axis=-1) if out.ndim == 3 else out != src
    rows = np.flatnonzero(changed.any(axis=1))
    assert rows.size and rows.min() < 30  # the top line holds the name, ids and dates
    assert changed.mean() < 0.05  # boxes over words, not the image


@requires_tesseract
@pytest.mark.parametrize("name", list(BURNED_IN))
def test_headers_still_deidentified_and_the_file_valid(run: Run, name: str) -> None:
    ds = pydicom.dcmread(run.out / "images" / Path(name).name)
    assert str(ds.PatientName) == PID and ds.PatientID == PID
    assert ds.PatientBirthDate == "" and "InstitutionName" not in ds
    assert ds.PatientIdentityRemoved == "YES"
    assert ds.DeidentificationMethod.endswith("; burned-in OCR")
    assert ds.file_meta.MediaStorageSOPInstanceUID == ds.SOPInstanceUID
    assert ds.pixel_array.shape[:2] == (ds.Rows, ds.Columns)


@requires_tesseract
def test_image_without_text_keeps_its_compressed_pixels(run: Run) -> None:
    src = pydicom.dcmread(DATA / NO_TEXT)
    out = pydicom.dcmread(run.out / "images" / Path(NO_TEXT).name)
    assert out.file_meta.TransferSyntaxUID == src.file_meta.TransferSyntaxUID
    assert out.PixelData == src.PixelData


@requires_tesseract
def test_summary_counts_what_was_checked_and_redacted(run: Run) -> None:
    counts = run.summary.burned_in
    assert (counts.checked, counts.redacted_images, counts.unchecked) == (3, 2, 0)
    assert counts.redacted_words >= 2 * 4 and counts.skip_reason is None


# ------------------------------------------------------------------ without tesseract
def test_without_tesseract_the_skip_is_reported_once(
    tmp_path: Path,
    spacy_cache: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("PATH", str(tmp_path / "empty-bin"))  # no tesseract to be found
    monkeypatch.setenv("CLINICAL_LLM_CACHE", str(spacy_cache.parent / "cli-cache"))
    key = tmp_path / "key"
    key.write_bytes(KEY)
    records = _records(tmp_path / "in")
    out = tmp_path / "out" / "records.jsonl"
    code = main(["data", "deid", str(records), str(out), "--key-file", str(key)])
    captured = capsys.readouterr()
    assert code == 0
    message = "3 DICOM image(s) not checked for burned-in text (tesseract not installed"
    err, out_text = " ".join(captured.err.split()), " ".join(captured.out.split())
    assert err.count(message) == 1 and "pip install 'clinical-llm[deid-images]'" in err
    assert "0 DICOM images checked, 0 words redacted in 0, 3 not checked" in out_text
    for name in BURNED_IN:  # headers de-identified, pixels as they were
        src = pydicom.dcmread(DATA / name)
        ds = pydicom.dcmread(out.parent / "images" / Path(name).name)
        assert str(ds.PatientName) == "P000042" and "InstitutionName" not in ds
        assert ds.PixelData == src.PixelData


# ------------------------------------------------------------------ matching, no OCR needed
def test_header_values_match_words_cut_short_and_joined() -> None:
    ds = pydicom.dcmread(DATA / "ultrasounds/RGB_IMAGE.dcm", stop_before_pixels=True)
    terms = header_phi_terms(ds)
    assert {"ZZZDOWNTIME", "MARY", "CLEVELAND"} <= terms
    words = [
        OcrWord(text, 0, 0, 1, 1, (1, 1, 1))
        for text in ("ZZZDOWNTIME,MARY", "CLEVELAN..", "Liver", "SIEMENS", "16cm", "77712345")
    ]
    assert [w.text for w in phi_words(words, terms, None)] == [
        "ZZZDOWNTIME,MARY",
        "CLEVELAN..",
        "77712345",
    ]
