"""Dataset building: splits, HF datasets on disk, manifest, and the ``data build`` CLI."""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pytest
from datasets import DatasetDict, load_from_disk

from llm.cli import main
from llm.data.build import (
    SPLITS,
    assign_splits,
    build_task_datasets,
    content_sha256,
    parse_split,
    parse_task_names,
    read_patient_splits,
    stratum_split_sizes,
)
from llm.data.schema import PatientRecord
from llm.errors import BadInputError
from tests.data.tasks.records import make_record, record_dict, write_assets

ALL_TASKS = ["diagnosis", "readmission", "summary", "radiology_impression", "ecg_rhythm"]
DIAGNOSES = ["pneumonia", "sepsis", "heart_failure", "copd_exacerbation"]


def write_cohort(base: Path, n: int = 40) -> Path:
    """``n`` patients over four diagnoses; a few lack a label, a note or the assets."""
    rows: list[dict[str, Any]] = []
    for i in range(n):
        raw = record_dict(
            f"P{i:06d}",
            diagnosis=None if i % 13 == 5 else DIAGNOSES[i % 4],
            readmission="yes" if i % 3 == 0 else "no",
            rhythm="sinus" if i % 2 else "sinus_tachycardia",
            with_assets=i % 10 != 7,
        )
        if i % 11 == 3:  # no discharge summary: readmission and summary skip it
            raw["encounters"][-1]["notes"] = [
                n for n in raw["encounters"][-1]["notes"] if n["type"] != "discharge_summary"
            ]
        write_assets(base, raw)
        rows.append(raw)
    path = base / "records.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    base = tmp_path_factory.mktemp("cohort")
    records = write_cohort(base)
    out = base.parent / (base.name + "-out")
    result = build_task_datasets(records, ALL_TASKS, out, seed=3)
    return out, result.manifest


# --- splits ---------------------------------------------------------------------------


def test_parse_split() -> None:
    assert parse_split("0.8,0.1,0.1") == (0.8, 0.1, 0.1)
    assert parse_split("0.9,0.1,0") == (0.9, 0.1, 0.0)
    for bad in ("0.8,0.1", "0.8,0.3,0.1", "a,b,c", "1.2,-0.1,-0.1", "0,0.5,0.5", "nan,0,0"):
        with pytest.raises(BadInputError, match="--split"):
            parse_split(bad)


def test_parse_task_names() -> None:
    assert parse_task_names("diagnosis, ecg_rhythm") == ["diagnosis", "ecg_rhythm"]
    with pytest.raises(BadInputError, match="did you mean 'readmission'"):
        parse_task_names("diagnosis,readmision")
    with pytest.raises(BadInputError, match="more than once"):
        parse_task_names("summary,summary")
    with pytest.raises(BadInputError, match="no task names"):
        parse_task_names(" , ")


def test_stratum_sizes_sum_and_stay_within_one_of_quota() -> None:
    for n in range(0, 40):
        sizes = stratum_split_sizes(n, (0.8, 0.1, 0.1), (0.0, 0.0, 0.0))
        assert sum(sizes) == n
        assert all(abs(s - n * p) < 1 for s, p in zip(sizes, (0.8, 0.1, 0.1), strict=True))
    assert stratum_split_sizes(3, (0.5, 0.5, 0.0), (0.0, 0.0, 5.0))[2] == 0  # never a 0 share


def _cohort(n: int) -> list[PatientRecord]:
    labels = ["pneumonia"] * 5 + ["sepsis"] * 3 + ["heart_failure"] * 2 + [None]
    return [make_record(f"P{i:05d}", diagnosis=labels[i % len(labels)]) for i in range(n)]


def test_assign_splits_is_stratified_and_hits_overall_proportions() -> None:
    records = _cohort(550)
    splits = assign_splits(records, (0.8, 0.1, 0.1), seed=0)
    assert set(splits) == {r.patient_id for r in records}
    per_stratum: dict[str, Counter[str]] = defaultdict(Counter)
    for r in records:
        per_stratum[r.labels.primary_diagnosis or "<missing>"][splits[r.patient_id]] += 1
    for counts in per_stratum.values():
        n = sum(counts.values())
        for split, p in zip(SPLITS, (0.8, 0.1, 0.1), strict=True):
            assert abs(counts[split] - n * p) < 1, counts
    overall = Counter(splits.values())
    assert (overall["train"], overall["validation"], overall["test"]) == (440, 55, 55)


def test_many_small_strata_still_fill_every_split() -> None:
    records = [make_record(f"P{i}", diagnosis=f"dx{i}") for i in range(30)]  # 30 strata of one
    overall = Counter(assign_splits(records, (0.8, 0.1, 0.1), seed=1).values())
    assert (overall["train"], overall["validation"], overall["test"]) == (24, 3, 3)


def test_assign_splits_is_seeded() -> None:
    records = _cohort(200)
    assert assign_splits(records, (0.8, 0.1, 0.1), 7) == assign_splits(records, (0.8, 0.1, 0.1), 7)
    assert assign_splits(records, (0.8, 0.1, 0.1), 7) != assign_splits(records, (0.8, 0.1, 0.1), 8)
    # record order does not matter, only the patients and the seed
    shuffled = list(reversed(records))
    assert assign_splits(shuffled, (0.8, 0.1, 0.1), 7) == assign_splits(records, (0.8, 0.1, 0.1), 7)


# --- datasets on disk ----------------------------------------------------------------------


def test_no_patient_in_two_splits_across_all_tasks(built: tuple[Path, dict[str, Any]]) -> None:
    out, _ = built
    split_of: dict[str, str] = {}
    for task in ALL_TASKS:
        dataset = load_from_disk(str(out / task))
        assert isinstance(dataset, DatasetDict)
        assert list(dataset) == list(SPLITS)
        for split in SPLITS:
            for pid in dataset[split]["patient_id"]:
                assert split_of.setdefault(pid, split) == split, (task, pid)


def test_patient_splits_file_lists_every_patient_once_as_the_datasets_do(
    built: tuple[Path, dict[str, Any]],
) -> None:
    out, manifest = built
    splits = read_patient_splits(out)
    assert {s: len(ids) for s, ids in splits.items()} == manifest["patients"]
    assert not (splits["train"] & splits["validation"] or splits["train"] & splits["test"])
    for task in ALL_TASKS:
        dataset = load_from_disk(str(out / task))
        for split in SPLITS:
            assert set(dataset[split]["patient_id"]) <= splits[split], (task, split)


def test_patient_splits_reader_names_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(BadInputError, match=r"patient_splits\.json: not found.*rebuild it"):
        read_patient_splits(tmp_path)
    (tmp_path / "patient_splits.json").write_text('{"train": [], "test": []}', encoding="utf-8")
    with pytest.raises(BadInputError, match="keys train, validation, test"):
        read_patient_splits(tmp_path)
    (tmp_path / "patient_splits.json").write_text(
        '{"train": ["P1"], "validation": [2], "test": []}', encoding="utf-8"
    )
    with pytest.raises(BadInputError, match="field 'validation' must be a list of patient id"):
        read_patient_splits(tmp_path)
    (tmp_path / "patient_splits.json").write_text('{"train":\n', encoding="utf-8")
    with pytest.raises(BadInputError, match=r"patient_splits\.json:2: not valid JSON"):
        read_patient_splits(tmp_path)


def test_datasets_load_back_with_demographics_and_parts(built: tuple[Path, dict[str, Any]]) -> None:
    out, _ = built
    text = load_from_disk(str(out / "diagnosis"))["train"]
    row = text[0]
    assert set(row) == {"id", "task", "patient_id", "encounter_id", "messages", "answer", "label",
                        "images", "demographics"}  # fmt: skip
    assert row["demographics"] == {"sex": "female", "age": "72", "age_band": "65-79",
                                   "race_ethnicity": "Black", "payer": "Medicare",
                                   "language": "English"}  # fmt: skip
    assert [m["role"] for m in row["messages"]] == ["system", "user", "assistant"]
    assert isinstance(row["messages"][1]["content"], str)
    assert row["answer"] == row["label"] == row["messages"][2]["content"]

    image = load_from_disk(str(out / "radiology_impression"))["train"][0]
    user = image["messages"][1]["content"]
    assert [p["type"] for p in user] == ["image", "text"]
    assert user[0]["image"] == image["images"][0] and user[0]["text"] is None
    assert (out / image["images"][0]).is_file()
    assert image["label"] is None


def test_jsonl_copies_match_the_arrow_data(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = built
    for task in ALL_TASKS:
        dataset = load_from_disk(str(out / task))
        rows = {s: [json.loads(x) for x in (out / task / f"{s}.jsonl").open()] for s in SPLITS}
        assert {s: dataset[s].to_list() for s in SPLITS} == rows
        assert content_sha256(rows) == manifest["tasks"][task]["content_sha256"]


def test_manifest_counts_reconcile(built: tuple[Path, dict[str, Any]]) -> None:
    out, manifest = built
    assert manifest == json.loads((out / "manifest.json").read_text())
    assert (manifest["read"], manifest["used"], manifest["rejected"]) == (40, 40, 0)
    assert sum(manifest["patients"].values()) == 40
    for task in ALL_TASKS:
        entry = manifest["tasks"][task]
        assert entry["examples"] + entry["skipped_total"] == manifest["used"]
        assert sum(entry["skipped"].values()) == entry["skipped_total"]
        assert sum(entry["counts"].values()) == entry["examples"]
        dataset = load_from_disk(str(out / task))
        assert {s: len(dataset[s]) for s in SPLITS} == entry["counts"]
        if entry["label_distribution"] is not None:
            for split in SPLITS:
                assert sum(entry["label_distribution"][split].values()) == entry["counts"][split]
                assert entry["label_distribution"][split] == dict(
                    sorted(Counter(dataset[split]["label"]).items())
                )
    tasks = manifest["tasks"]
    # The cohort's gaps, counted by reason (write_cohort documents them):
    assert tasks["diagnosis"]["skipped"] == {"no_label": 3}
    assert tasks["readmission"]["skipped"] == {"no_discharge_summary": 4}
    assert tasks["summary"]["skipped"] == {"no_discharge_summary": 4}
    assert tasks["radiology_impression"]["skipped"] == {"no_image": 4}
    assert tasks["ecg_rhythm"]["skipped"] == {"no_waveform": 4}
    assert tasks["diagnosis"]["answers"] == sorted(DIAGNOSES)
    assert tasks["ecg_rhythm"]["assets"] == 36
    assert manifest["args"]["seed"] == 3 and manifest["args"]["tasks"] == ALL_TASKS
    assert len(manifest["records"]["sha256"]) == 64
    assert manifest["package_version"] and manifest["libraries"]["datasets"]


@pytest.mark.slow
def test_same_seed_same_datasets_other_seed_other_split(
    built: tuple[Path, dict[str, Any]], tmp_path: Path
) -> None:
    _, manifest = built
    records = Path(manifest["args"]["records"])
    again = build_task_datasets(records, ALL_TASKS, tmp_path / "again", seed=3).manifest
    for task in ALL_TASKS:
        for key in ("content_sha256", "counts", "label_distribution", "assets_sha256"):
            assert again["tasks"][task].get(key) == manifest["tasks"][task].get(key), (task, key)
    other = build_task_datasets(records, ["diagnosis"], tmp_path / "other", seed=4).manifest
    assert (
        other["tasks"]["diagnosis"]["content_sha256"]
        != manifest["tasks"]["diagnosis"]["content_sha256"]
    )


def test_an_empty_split_is_saved_loadable(tmp_path: Path) -> None:
    # No validation split asked for: datasets would save it without a data file,
    # and load_from_disk then failed on the whole task (IndexError).
    records = write_cohort(tmp_path / "c", n=8)
    build_task_datasets(records, ["readmission"], tmp_path / "out", split=(0.5, 0.0, 0.5))
    dataset = load_from_disk(str(tmp_path / "out" / "readmission"))
    assert dataset["validation"].num_rows == 0
    assert dataset["train"].num_rows + dataset["test"].num_rows > 0
    assert (tmp_path / "out" / "readmission" / "validation.jsonl").read_text() == ""


# --- bad input ---------------------------------------------------------------------------


def test_invalid_line_stops_the_build_or_is_rejected(tmp_path: Path) -> None:
    records = write_cohort(tmp_path / "c", n=6)
    with records.open("a") as fh:
        fh.write('{"patient_id": ""}\n')
    with pytest.raises(BadInputError, match=r"records\.jsonl:7: patient_id"):
        build_task_datasets(records, ["diagnosis"], tmp_path / "out")
    result = build_task_datasets(records, ["diagnosis"], tmp_path / "out2", skip_invalid=True)
    assert (result.stats.read, result.stats.used, result.stats.rejected) == (7, 6, 1)
    assert json.loads((tmp_path / "out2" / "rejects.jsonl").read_text())["line"] == 7
    assert result.manifest["rejected"] == 1


def test_unreadable_asset_errors_or_is_counted_with_skip_invalid(tmp_path: Path) -> None:
    records = write_cohort(tmp_path / "c", n=3)
    (tmp_path / "c" / "images" / "P000001" / "P000001-CXR1.dcm").write_bytes(b"garbage")
    with pytest.raises(BadInputError, match=r"P000001-CXR1\.dcm: cannot read DICOM"):
        build_task_datasets(records, ["radiology_impression"], tmp_path / "out")
    result = build_task_datasets(
        records, ["radiology_impression"], tmp_path / "out2", skip_invalid=True
    )
    entry = result.manifest["tasks"]["radiology_impression"]
    assert entry["skipped"] == {"unreadable_image": 1}
    assert entry["examples"] == 2
    assert "P000001-CXR1.dcm" in entry["asset_errors"][0]


def test_repeated_patient_id_is_an_error(tmp_path: Path) -> None:
    path = tmp_path / "records.jsonl"
    row = json.dumps(record_dict("P1", with_assets=False))
    path.write_text(row + "\n" + row + "\n")
    with pytest.raises(BadInputError, match="'P1' appears in valid record #1 and again in #2"):
        build_task_datasets(path, ["diagnosis"], tmp_path / "out")


def test_out_dir_rules(tmp_path: Path) -> None:
    records = write_cohort(tmp_path / "c", n=3)
    foreign = tmp_path / "foreign"
    foreign.mkdir()
    (foreign / "keep.txt").write_text("mine")
    with pytest.raises(BadInputError, match="not empty and holds no earlier build"):
        build_task_datasets(records, ["diagnosis"], foreign)
    assert (foreign / "keep.txt").read_text() == "mine"
    with pytest.raises(BadInputError, match="lies inside --out"):
        build_task_datasets(records, ["diagnosis"], tmp_path / "c")
    out = tmp_path / "out"
    build_task_datasets(records, ["diagnosis", "summary"], out)
    build_task_datasets(records, ["diagnosis"], out)  # an earlier build is replaced whole
    assert not (out / "summary").exists()
    with pytest.raises(BadInputError, match="--rejects needs --skip-invalid"):
        build_task_datasets(records, ["diagnosis"], out, rejects=tmp_path / "r.jsonl")


# --- CLI -------------------------------------------------------------------------------------


def test_cli_build(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    records = write_cohort(tmp_path / "c", n=10)
    out = tmp_path / "out"
    code = main(["data", "build", "--records", str(records), "--tasks", "diagnosis,ecg_rhythm",
                 "--out", str(out), "--split", "0.6,0.2,0.2", "--seed", "1"])  # fmt: skip
    captured = capsys.readouterr()
    assert code == 0, captured.err
    err = " ".join(captured.err.split())
    assert "read 10 = used 10 + rejected 0" in err
    assert "diagnosis: 9 examples" in err and "skipped 1 (no_label 1)" in err
    assert captured.out.count("\n") == 1  # one summary line
    assert f"in {out}" in " ".join(captured.out.split())
    manifest = json.loads((out / "manifest.json").read_text())
    assert manifest["args"]["split"] == [0.6, 0.2, 0.2]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--tasks", "diagnosis,ecg_rythm"], "did you mean 'ecg_rhythm'"),
        (["--tasks", "diagnosis", "--split", "0.5,0.5"], "--split"),
        (["--tasks", "diagnosis", "--rejects", "r.jsonl"], "--rejects needs --skip-invalid"),
    ],
)
def test_cli_bad_usage_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text(json.dumps(record_dict("P1", with_assets=False)) + "\n")
    code = main(["data", "build", "--records", str(records), "--out", str(tmp_path / "o"), *args])
    assert code == 2
    assert message in " ".join(capsys.readouterr().err.split())
    assert not (tmp_path / "o" / "manifest.json").exists()


def test_cli_bad_record_exits_2_naming_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = tmp_path / "records.jsonl"
    records.write_text('{"patient_id": "P1", "labels": {"readmission_30d": "maybe"}}\n')
    code = main(["data", "build", "--records", str(records), "--tasks", "readmission",
                 "--out", str(tmp_path / "o")])  # fmt: skip
    assert code == 2
    assert f"{records}:1: labels.readmission_30d" in " ".join(capsys.readouterr().err.split())


# --- on the synthetic cohort -----------------------------------------------------------------

CONTRACT_DIAGNOSES = {"pneumonia", "heart_failure", "copd_exacerbation", "sepsis",
                      "acute_kidney_injury", "atrial_fibrillation", "diabetic_ketoacidosis",
                      "myocardial_infarction"}  # fmt: skip
CONTRACT_RHYTHMS = {"sinus", "atrial_fibrillation", "sinus_tachycardia", "sinus_bradycardia"}


@pytest.mark.slow
def test_build_on_a_synthetic_cohort(tmp_path: Path) -> None:
    from llm.data.synth import generate_cohort

    generate_cohort(n_patients=24, seed=11, out_dir=tmp_path / "cohort", workers=1)
    result = build_task_datasets(tmp_path / "cohort" / "records.jsonl", ALL_TASKS, tmp_path / "out")
    tasks = result.manifest["tasks"]
    for task in ALL_TASKS:  # the cohort writes everything every task needs
        assert tasks[task]["examples"] == 24 and tasks[task]["skipped"] == {}, task
    assert set(tasks["diagnosis"]["answers"]) <= CONTRACT_DIAGNOSES
    assert set(tasks["ecg_rhythm"]["answers"]) <= CONTRACT_RHYTHMS
    for task in ("diagnosis", "summary", "readmission"):
        for row in load_from_disk(str(tmp_path / "out" / task))["train"]:
            user = row["messages"][1]["content"]
            assert "signed" not in user.lower() and "MRN" not in user, (task, row["id"])
            if task == "diagnosis":
                assert "ASSESSMENT AND PLAN" not in user and "DISCHARGE" not in user
                assert user.startswith("CHIEF COMPLAINT:") and "\nLABS: " in user
    for row in load_from_disk(str(tmp_path / "out" / "radiology_impression"))["train"]:
        assert row["answer"] and "signed" not in row["answer"].lower()
        assert (tmp_path / "out" / row["images"][0]).is_file()
