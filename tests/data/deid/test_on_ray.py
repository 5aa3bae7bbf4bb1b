"""``data deid --ray-address``: Ray Data gives the single-process output, counts and scores,
rejects bad lines the same way, and no note text reaches Ray's logs."""

from __future__ import annotations

import builtins
import json
import os
import shutil
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm.cli import main
from llm.data.deid.records import deidentify_records
from llm.data.synth import generate_cohort
from llm.errors import BadInputError, RecordError
from tests.data.deid.conftest import KEY
from tests.ray_local import local_ray

PATIENTS = 6
BAD_LINE = '{"patient_id": "P999999", "encounters": [{"encounter_id": "E1"}]}\n'


@pytest.fixture(scope="module")
def cohort_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small synthetic cohort (notes with PHI spans, DICOMs, ECGs) and its PHI values."""
    root = tmp_path_factory.mktemp("ray-cohort") / "in"
    generate_cohort(n_patients=PATIENTS, seed=11, out_dir=root, workers=1)
    return root


def _phi_values(cohort: Path) -> set[str]:
    """Every PHI value of the cohort of 6 characters or more (short ones match by chance)."""
    texts = {
        note["note_id"]: note["text"]
        for line in (cohort / "records.jsonl").read_text().splitlines()
        for enc in json.loads(line)["encounters"]
        for note in enc["notes"]
    }
    values = set()
    for line in (cohort / "phi_spans.jsonl").read_text().splitlines():
        entry = json.loads(line)
        text = texts[entry["note_id"]]
        values |= {text[s["start"] : s["end"]] for s in entry["spans"]}
    return {v for v in values if len(v) >= 6}


@pytest.fixture(scope="module")
def ray_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A local Ray with 2 CPUs for this module (the runs below use it); its session folder."""
    cache = tmp_path_factory.mktemp("ray-spacy-cache")
    with local_ray({"CLINICAL_LLM_CACHE": str(cache)}) as folder:
        yield folder


def _tree(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


@pytest.mark.slow
def test_ray_output_counts_and_scores_equal_one_process(
    cohort_dir: Path,
    ray_dir: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    cohort = tmp_path / "in"
    shutil.copytree(cohort_dir, cohort)
    with (cohort / "records.jsonl").open("a") as fh:  # a bad line, rejected by both runs
        fh.write(BAD_LINE)
    key = tmp_path / "key"
    key.write_bytes(KEY)
    monkeypatch.setenv("CLINICAL_LLM_CACHE", os.environ["CLINICAL_LLM_CACHE"])
    args = ["--key-file", str(key), "--evaluate", "--skip-invalid"]
    summaries = {}
    for name, extra in (("one", []), ("ray", ["--ray-address", "local", "--workers", "2"])):
        out = tmp_path / name / "records.jsonl"
        code = main(["data", "deid", str(cohort / "records.jsonl"), str(out), *args, *extra])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        summaries[name] = captured
        assert f"read {PATIENTS + 1} = used {PATIENTS} + rejected 1" in captured.err
    one, on_ray = _tree(tmp_path / "one"), _tree(tmp_path / "ray")
    # records, rejects, deid_eval.json, every de-identified DICOM and ECG: byte for byte
    assert {"records.jsonl", "deid_rejects.jsonl", "deid_eval.json"} <= set(one)
    assert len([p for p in one if p.startswith(("images", "waveforms"))]) == 2 * PATIENTS
    assert one == on_ray
    assert json.loads(one["deid_rejects.jsonl"].splitlines()[0])["line"] == PATIENTS + 1

    def counts(out: str) -> str:  # the summary line without its timing and path
        line = next(x for x in out.splitlines() if x.startswith("de-identified"))
        return line.split(") in ")[0]

    assert counts(summaries["one"].out) == counts(summaries["ray"].out)
    # Ray Data's own INFO lines stay in its log file, off the command's stderr
    assert "Starting execution of Dataset" not in summaries["ray"].err


@pytest.mark.slow
def test_bad_line_stops_the_ray_run_as_it_stops_one_process(
    cohort_dir: Path, ray_dir: Path, tmp_path: Path
) -> None:
    records = tmp_path / "in" / "records.jsonl"
    shutil.copytree(cohort_dir, records.parent)
    with records.open("a") as fh:
        fh.write(BAD_LINE)
    errors = []
    for name, workers, ray_address in (("one", 1, None), ("ray", 2, "local")):
        out = tmp_path / name / "records.jsonl"
        with pytest.raises(RecordError) as err:
            deidentify_records(records, out, key=KEY, workers=workers, ray_address=ray_address)
        errors.append((str(err.value), err.value.line, err.value.field))
        assert not out.exists()
    assert errors[0] == errors[1] == (errors[0][0], PATIENTS + 1, "encounters[0].time")


@pytest.mark.slow
def test_failing_patient_is_raised_by_the_driver_and_kept_out_of_ray_logs(
    cohort_dir: Path, ray_dir: Path, tmp_path: Path
) -> None:
    records = tmp_path / "in" / "records.jsonl"
    shutil.copytree(cohort_dir, records.parent)
    ecg = sorted((records.parent / "waveforms").rglob("*.npy"))[2]
    ecg.write_bytes(b"not an array")  # found only when the actor de-identifies patient 3
    errors = []
    for name, ray_address in (("one", None), ("ray", "local")):
        out = tmp_path / name / "records.jsonl"
        with pytest.raises(BadInputError) as err:
            deidentify_records(records, out, key=KEY, ray_address=ray_address, ner="rules")
        errors.append((type(err.value), str(err.value)))
        assert not out.exists()
    assert errors[0] == errors[1] and ecg.name in errors[0][1]
    # this test and the ones before it ran every note through Ray: none of its text in
    # any file of the session (logs, events, the actors' stdout and stderr)
    files = [p for p in ray_dir.rglob("*") if p.is_file() and "spilled" not in str(p)]
    logs = "\n".join(p.read_text(errors="replace") for p in files)
    assert "MapBatches(RecordActor)" in logs  # the actors' own logs are among the files scanned
    phi = _phi_values(cohort_dir)
    assert len(phi) > 50
    leaked = sorted(v for v in phi if v in logs)
    assert leaked == [], f"{len(leaked)} PHI values in Ray's session files"


def test_missing_ray_says_how_to_install(
    cohort_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real_import = builtins.__import__

    def no_ray(name: str, *args: Any, **kwargs: Any) -> Any:
        if name == "ray" or name.startswith("ray."):
            raise ImportError(f"No module named {name!r}", name=name)
        return real_import(name, *args, **kwargs)

    for mod in [m for m in sys.modules if m == "ray" or m.startswith("ray.")]:
        monkeypatch.delitem(sys.modules, mod)
    monkeypatch.setattr(builtins, "__import__", no_ray)
    out = tmp_path / "out" / "records.jsonl"
    with pytest.raises(BadInputError, match=r"pip install 'clinical-llm\[ray\]'"):
        deidentify_records(cohort_dir / "records.jsonl", out, key=KEY, ray_address="local")
    assert not out.exists()


@pytest.mark.parametrize("address", ["", "localhost", "http://head:8265", "ray:/x"])
def test_bad_ray_address_is_refused(cohort_dir: Path, tmp_path: Path, address: str) -> None:
    with pytest.raises(BadInputError, match="--ray-address must be"):
        deidentify_records(
            cohort_dir / "records.jsonl", tmp_path / "o" / "r.jsonl", key=KEY, ray_address=address
        )
