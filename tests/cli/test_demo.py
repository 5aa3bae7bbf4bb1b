"""``clinical-llm demo`` runs every data-layer step for real and leaves their outputs."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from datasets import load_from_disk

from llm.cli import main
from llm.cli.demo import DEMO_TASKS, demo_steps, run_demo
from llm.errors import CheckFailedError


def test_steps_chain_their_outputs(tmp_path: Path) -> None:
    synth, validate, deid, build = demo_steps(tmp_path, patients=20, seed=3)
    cohort = synth[synth.index("--out") + 1]
    assert validate[-1] == f"{cohort}/records.jsonl"
    assert deid[2] == f"{cohort}/records.jsonl"
    assert build[build.index("--records") + 1] == deid[3]


def test_a_failing_step_stops_the_demo(tmp_path: Path) -> None:
    seen: list[list[str]] = []

    def run(argv: list[str]) -> int:
        seen.append(argv)
        return 2 if argv[1] == "validate" else 0

    with pytest.raises(CheckFailedError, match="demo step 2 failed with exit code 2"):
        run_demo(tmp_path, 20, 3, run)
    assert [argv[1] for argv in seen] == ["synth", "validate"]


@pytest.mark.slow
def test_demo_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "demo"
    assert main(["demo", "--out", str(out), "--patients", "40", "--seed", "11"]) == 0
    assert "demo finished" in capsys.readouterr().out
    evaluation = json.loads((out / "deid" / "deid_eval.json").read_text())
    assert evaluation["overall"]["recall"] >= 0.98
    manifest = json.loads((out / "datasets" / "manifest.json").read_text())
    assert (manifest["read"], manifest["used"], manifest["rejected"]) == (40, 40, 0)
    for task in DEMO_TASKS.split(","):
        splits = load_from_disk(str(out / "datasets" / task))
        assert sum(len(s) for s in splits.values()) == 40
        assert "demographics" in splits["train"].column_names
    # the key that made the surrogates and date offsets never lands beside the data
    assert not any(p.name.endswith(".key") for p in (out / "deid").rglob("*"))
