"""Shared fixtures. Tests never touch the network: hub clients are forced offline."""

from __future__ import annotations

import json
import os
from collections.abc import Generator
from pathlib import Path
from typing import Any

import pytest

from llm.env import set_private_env
from tests.real_components import COMPONENTS, skipped_component

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


# --- skips of real components (tests/real_components.py) ------------------------------------


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("real components")
    group.addoption(
        "--real-components",
        choices=("optional", "required"),
        default=os.environ.get("REAL_COMPONENTS", "optional"),
        help="required: a test skipped for a missing real component (vLLM, Triton, Chromium, "
        "tesseract...) fails, unless --expected-skips names it (make test and CI: required)",
    )
    group.addoption(
        "--expected-skips",
        default=os.environ.get("EXPECTED_SKIPS", ""),
        help="components this machine is declared to lack, comma or space separated "
        f"(known: {', '.join(COMPONENTS)})",
    )


def _expected_skips(config: pytest.Config) -> set[str]:
    names = {name for name in config.getoption("--expected-skips").replace(",", " ").split()}
    unknown = names - set(COMPONENTS)
    if unknown:
        raise pytest.UsageError(
            f"--expected-skips: unknown component(s) {sorted(unknown)}; known: {list(COMPONENTS)}"
        )
    return names


def pytest_configure(config: pytest.Config) -> None:
    _expected_skips(config)  # a typo fails the run at once, not after an hour of tests


def _refuse_unexpected_skip(
    config: pytest.Config, report: pytest.TestReport | pytest.CollectReport
) -> None:
    """Turn the skip of a real component into a failure where the run requires it."""
    if not report.skipped or config.getoption("--real-components") != "required":
        return
    longrepr = report.longrepr
    reason = longrepr[2] if isinstance(longrepr, tuple) else str(longrepr)
    component = skipped_component(reason)
    if component is None or component in _expected_skips(config):
        return
    report.outcome = "failed"
    report.longrepr = (
        f"{reason}\n--real-components=required: this test proves a real component works and "
        f"must not skip. Install it, or declare it missing on this machine with "
        f"--expected-skips {component} (make test EXPECTED_SKIPS={component})."
    )


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(
    item: pytest.Item, call: pytest.CallInfo[None]
) -> Generator[None, pytest.TestReport, pytest.TestReport]:
    report = yield
    _refuse_unexpected_skip(item.config, report)
    return report


@pytest.hookimpl(wrapper=True)
def pytest_make_collect_report(
    collector: pytest.Collector,
) -> Generator[None, pytest.CollectReport, pytest.CollectReport]:
    report = yield
    _refuse_unexpected_skip(collector.config, report)
    return report
