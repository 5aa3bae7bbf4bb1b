"""The cohort as files: valid records, reproducible bytes, an honest manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from llm.data.synth import generate_cohort
from llm.errors import BadInputError
from tests.data.synth.conftest import COHORT_PATIENTS
from tests.data.synth.helpers import load


def _tree(out: Path) -> dict[str, bytes]:
    return {str(p.relative_to(out)): p.read_bytes() for p in sorted(out.rglob("*")) if p.is_file()}


def test_records_are_valid_with_assets(cohort_dir: Path) -> None:
    records, spans = load(cohort_dir)
    assert len(records) == COHORT_PATIENTS
    assert [r.patient_id for r in records] == [f"P{i:06d}" for i in range(1, COHORT_PATIENTS + 1)]
    for r in records:
        assert 1 <= len(r.encounters) <= 3
        index = r.encounters[-1]
        assert index.kind == "inpatient"
        assert all(e.time < index.time for e in r.encounters[:-1])
        assert sorted(n.type for n in index.notes) == [
            "discharge_summary",
            "ecg_report",
            "progress_note",
            "radiology_report",
        ]
        assert index.images[0].path == f"images/{r.patient_id}/{index.images[0].image_id}.dcm"
        assert index.images[0].modality == "DX"
        assert (
            index.waveforms[0].path
            == f"waveforms/{r.patient_id}/{index.waveforms[0].waveform_id}.npy"
        )
        assert sum(d.primary for d in index.diagnoses) == 1
        for note in r.all_notes():
            assert note.note_id.startswith(f"{r.patient_id}-E")
            assert note.note_id in spans
        assert r.labels.primary_diagnosis and r.labels.readmission_30d and r.labels.triage_level
        for lab in index.labs:
            assert lab.ref_low is not None and lab.ref_high is not None and lab.unit


def test_same_seed_same_bytes_whatever_the_workers(tmp_path: Path) -> None:
    generate_cohort(n_patients=8, seed=5, out_dir=tmp_path / "a", workers=1)
    generate_cohort(n_patients=8, seed=5, out_dir=tmp_path / "b", workers=2)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert len(a) == 3 + 8 + 8
    assert a == b


def test_different_seed_different_cohort(tmp_path: Path) -> None:
    generate_cohort(n_patients=4, seed=1, out_dir=tmp_path / "a", workers=1)
    generate_cohort(n_patients=4, seed=2, out_dir=tmp_path / "b", workers=1)
    a, b = _tree(tmp_path / "a"), _tree(tmp_path / "b")
    assert a["records.jsonl"] != b["records.jsonl"]
    assert a["phi_spans.jsonl"] != b["phi_spans.jsonl"]
    for suffix in (".dcm", ".npy"):
        assets_a = sorted(v for k, v in a.items() if k.endswith(suffix))
        assets_b = sorted(v for k, v in b.items() if k.endswith(suffix))
        assert len(assets_a) == 4 and not set(assets_a) & set(assets_b)


def test_manifest(cohort_dir: Path) -> None:
    manifest = json.loads((cohort_dir / "manifest.json").read_text())
    assert manifest["args"] == {"patients": COHORT_PATIENTS, "image_size": 128, "bias": []}
    for name in ("records.jsonl", "phi_spans.jsonl"):
        assert (
            manifest["files"][name]["sha256"]
            == hashlib.sha256((cohort_dir / name).read_bytes()).hexdigest()
        )
    records, _ = load(cohort_dir)
    counts = manifest["counts"]
    assert counts["patients"] == len(records)
    assert counts["encounters"] == sum(len(r.encounters) for r in records)
    assert counts["notes"] == sum(len(r.all_notes()) for r in records)
    assert sum(manifest["labels"]["primary_diagnosis"].values()) == len(records)
    assert manifest["labels"]["rhythm"] == {
        k: sum(r.labels.rhythm == k for r in records)
        for k in sorted({r.labels.rhythm for r in records if r.labels.rhythm})
    }
    text = json.dumps(manifest)
    assert "time" not in text and str(cohort_dir) not in text  # nothing that varies run to run


def test_rerun_replaces_previous_cohort(tmp_path: Path) -> None:
    generate_cohort(n_patients=6, seed=3, out_dir=tmp_path, workers=1)
    generate_cohort(n_patients=2, seed=3, out_dir=tmp_path, workers=1)
    assert len(list((tmp_path / "images").iterdir())) == 2
    records, _ = load(tmp_path)
    assert len(records) == 2


def test_refuses_folder_of_other_files(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not empty"):
        generate_cohort(n_patients=1, seed=0, out_dir=tmp_path, workers=1)
    assert (tmp_path / "notes.txt").read_text() == "mine"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_patients": 0}, "--patients"),
        ({"image_size": 16}, "--image-size"),
        ({"seed": -1}, "--seed"),
    ],
)
def test_bad_arguments(tmp_path: Path, kwargs: dict[str, int], message: str) -> None:
    args = {"n_patients": 1, "seed": 0, "out_dir": tmp_path, "workers": 1, **kwargs}
    with pytest.raises(BadInputError, match=message):
        generate_cohort(**args)  # type: ignore[arg-type]
