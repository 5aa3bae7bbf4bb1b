"""The canary scan itself: it finds a planted canary in each form a leak would take."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.canaries.conftest import NAME, NEEDLES, PHONE, SSN, assert_no_canary, leaking_files


def test_scan_finds_canaries_in_text_bytes_utf16_other_case_and_digits() -> None:
    assert NAME in NEEDLES
    for leak in (
        f"INFO request for {NAME}",
        f"patient {NAME.upper()}".encode(),
        f"note: {NAME}".encode("utf-16-le"),
        f"ssn {SSN.replace('-', '')} phone {PHONE}",
        "partial Quenndt",
    ):
        with pytest.raises(AssertionError, match="PHI canary"):
            assert_no_canary(leak, "a planted leak")
    assert_no_canary("Patient [NAME] MRN [MRN] phone [PHONE]", "a de-identified note")


def test_scan_finds_a_canary_in_tensorboard_events_and_an_mlflow_file_store(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlflow.tracking import MlflowClient
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(tmp_path / "runs"))
    writer.add_text("sample", f"prompt: {NAME}")
    writer.close()
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")
    client = MlflowClient(tracking_uri=(tmp_path / "mlruns").as_uri())
    run = client.create_run(client.create_experiment("planted"))
    client.log_param(run.info.run_id, "note", f"seen {PHONE}")
    leaks = leaking_files(tmp_path)
    assert any(path.startswith("runs/events.out.tfevents.") for path in leaks)
    assert any(path.startswith("mlruns/") and path.endswith("params/note") for path in leaks)
