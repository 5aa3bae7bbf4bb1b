"""Shared fixtures. Tests never touch the network: hub clients are forced offline."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llm.env import set_private_env

set_private_env()


def minimal_record(patient_id: str = "P000001", **overrides: Any) -> dict[str, Any]:
    """A small valid patient record as a plain dict (edit it to make bad input)."""
    record: dict[str, Any] = {
        "patient_id": patient_id,
        "demographics": {
            "sex": "female",
            "age": 71,
            "race_ethnicity": "Black",
            "payer": "Medicare",
        },
        "encounters": [
            {
                "encounter_id": "E1",
                "time": "2131-04-02T08:15:00",
                "end_time": "2131-04-06T12:00:00",
                "kind": "inpatient",
                "notes": [
                    {"note_id": "N1", "type": "progress_note", "text": "CHIEF COMPLAINT: cough"}
                ],
                "labs": [
                    {
                        "code": "6690-2",
                        "name": "WBC",
                        "value": 14.2,
                        "unit": "K/uL",
                        "ref_low": 4.0,
                        "ref_high": 11.0,
                    }
                ],
                "vitals": [{"name": "heart_rate", "value": 104, "unit": "/min"}],
                "diagnoses": [{"system": "ICD-10", "code": "J18.9", "primary": True}],
            }
        ],
        "labels": {"primary_diagnosis": "pneumonia", "readmission_30d": "no"},
    }
    record.update(overrides)
    return record


@pytest.fixture
def write_jsonl(tmp_path: Path):  # type: ignore[no-untyped-def]
    """Write lines (dicts or raw strings) to a JSONL file in tmp_path and return its path."""

    def _write(rows: list[Any], name: str = "records.jsonl") -> Path:
        path = tmp_path / name
        with path.open("w", encoding="utf-8") as fh:
            for row in rows:
                fh.write((row if isinstance(row, str) else json.dumps(row)) + "\n")
        return path

    return _write
