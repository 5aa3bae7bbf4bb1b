"""``data build --ray-address``: Ray Data renders the same datasets, assets and counts as one
process, and stops or counts bad lines and unreadable assets the same way."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from llm.cli import main
from llm.data.build import build_task_datasets
from llm.errors import BadInputError
from tests.data.test_build import ALL_TASKS, write_cohort
from tests.ray_local import local_ray

PATIENTS = 12
# differ between any two builds: when, and where to (the rest of the manifest must not)
RUN_FIELDS = ("started_at", "finished_at", "args", "git_commit")


@pytest.fixture(scope="module")
def ray_dir() -> Iterator[Path]:
    """A local Ray with 2 CPUs for this module (the builds below use it)."""
    with local_ray() as folder:
        yield folder


def _files(out: Path) -> dict[str, bytes]:
    """Every file of a build but the manifest, which records when and where it ran."""
    files = sorted(p for p in out.rglob("*") if p.is_file() and p.name != "manifest.json")
    return {str(p.relative_to(out)): p.read_bytes() for p in files}


def _manifest(out: Path) -> dict[str, Any]:
    manifest = json.loads((out / "manifest.json").read_text())
    return {k: v for k, v in manifest.items() if k not in RUN_FIELDS}


@pytest.mark.slow
def test_ray_build_equals_one_process_with_a_bad_line_and_a_bad_asset(
    ray_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    records = write_cohort(tmp_path / "c", n=PATIENTS)
    (tmp_path / "c" / "images" / "P000001" / "P000001-CXR1.dcm").write_bytes(b"garbage")
    with records.open("a") as fh:
        fh.write('{"patient_id": ""}\n')
    args = ["--records", str(records), "--tasks", ",".join(ALL_TASKS), "--skip-invalid"]
    outs = {"one": tmp_path / "one", "ray": tmp_path / "ray"}
    for name, extra in (("one", []), ("ray", ["--ray-address", "local", "--workers", "2"])):
        code = main(["data", "build", *args, "--out", str(outs[name]), *extra])
        captured = capsys.readouterr()
        assert code == 0, captured.err
        assert f"read {PATIENTS + 1} = used {PATIENTS} + rejected 1" in captured.err
    one, on_ray = _files(outs["one"]), _files(outs["ray"])
    # every task's Arrow data and JSONL, the PNG assets, the rejects and the splits
    assert any(p.startswith("assets/images/") for p in one)
    assert any(p.startswith("assets/ecg/") for p in one)
    assert one == on_ray
    manifest = _manifest(outs["one"])
    assert manifest == _manifest(outs["ray"])
    assert (manifest["read"], manifest["used"], manifest["rejected"]) == (PATIENTS + 1, PATIENTS, 1)
    assert manifest["tasks"]["radiology_impression"]["skipped"]["unreadable_image"] == 1


@pytest.mark.slow
def test_unreadable_asset_stops_the_ray_build_as_it_stops_one_process(
    ray_dir: Path, tmp_path: Path
) -> None:
    records = write_cohort(tmp_path / "c", n=PATIENTS)
    (tmp_path / "c" / "images" / "P000003" / "P000003-CXR1.dcm").write_bytes(b"garbage")
    errors = []
    for name, ray_address in (("one", None), ("ray", "local")):
        out = tmp_path / name
        with pytest.raises(BadInputError) as err:
            build_task_datasets(records, ALL_TASKS, out, ray_address=ray_address, workers=2)
        errors.append((type(err.value), str(err.value)))
        assert not out.exists()  # the staging folder is removed, nothing published
    assert errors[0] == errors[1] and "P000003-CXR1.dcm: cannot read DICOM" in errors[0][1]


def test_ray_build_refuses_a_bad_address_before_writing(tmp_path: Path) -> None:
    records = write_cohort(tmp_path / "c", n=3)
    with pytest.raises(BadInputError, match="--ray-address must be"):
        build_task_datasets(records, ["diagnosis"], tmp_path / "out", ray_address="nowhere")
    assert not (tmp_path / "out").exists()
