from __future__ import annotations

import pytest
from pydantic import ValidationError

from llm.data.schema import AGE_BANDS, Demographics, PatientRecord, age_band_of
from tests.conftest import minimal_record


def test_minimal_record_validates_and_derives_age_band() -> None:
    rec = PatientRecord.model_validate(minimal_record())
    assert rec.demographics.age_band == "65-79"
    assert rec.encounters[0].labs[0].value == 14.2


@pytest.mark.parametrize(
    ("age", "band"),
    [
        (0, "0-17"),
        (17, "0-17"),
        (18, "18-39"),
        (64, "40-64"),
        (65, "65-79"),
        (79, "65-79"),
        (80, "80+"),
        (104, "80+"),
    ],
)
def test_age_band_edges(age: int, band: str) -> None:
    assert age_band_of(age) == band
    assert band in AGE_BANDS


def test_unknown_key_is_rejected_not_dropped() -> None:
    data = minimal_record()
    data["encounters"][0]["labs"][0]["flag"] = "H"
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        PatientRecord.model_validate(data)


def test_age_band_must_agree_with_age() -> None:
    with pytest.raises(ValidationError, match="does not match age"):
        Demographics(age=30, age_band="80+")


def test_times_must_be_iso() -> None:
    data = minimal_record()
    data["encounters"][0]["time"] = "April 2nd"
    with pytest.raises(ValidationError, match="not an ISO-8601 time"):
        PatientRecord.model_validate(data)


def test_missing_demographics_become_unknown() -> None:
    rec = PatientRecord.model_validate({"patient_id": "X"})
    d = rec.demographics
    assert (d.sex, d.age_band, d.race_ethnicity, d.payer) == ("unknown",) * 4


def test_asset_paths_are_located() -> None:
    data = minimal_record()
    data["encounters"][0]["images"] = [{"path": "img/a.dcm", "modality": "DX", "format": "dicom"}]
    data["encounters"][0]["waveforms"] = [
        {"path": "ecg/a.npy", "kind": "ecg", "sampling_hz": 500, "leads": ["I"]}
    ]
    rec = PatientRecord.model_validate(data)
    assert rec.asset_paths() == [
        ("encounters[0].images[0].path", "img/a.dcm"),
        ("encounters[0].waveforms[0].path", "ecg/a.npy"),
    ]
