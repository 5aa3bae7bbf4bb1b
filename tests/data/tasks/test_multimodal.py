"""Golden renderings of the image tasks on a hand-written record with real asset files."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image as PILImage

from llm.data.assets import AssetError
from llm.data.schema import PatientRecord
from llm.data.tasks import RenderContext, Skip
from llm.data.tasks.base import Example
from llm.data.tasks.multimodal import EcgRhythmTask, RadiologyImpressionTask, asset_path
from tests.data.tasks.records import record_dict, write_assets


@pytest.fixture
def ctx(tmp_path: Path) -> RenderContext:
    return RenderContext(
        records_dir=tmp_path / "cohort",
        out_dir=tmp_path / "out",
        answers={"ecg_rhythm": ("atrial_fibrillation", "sinus", "sinus_tachycardia")},
    )


def _record(ctx: RenderContext, patient_id: str = "P000001", **kwargs: object) -> PatientRecord:
    raw = record_dict(patient_id, **kwargs)  # type: ignore[arg-type]
    write_assets(ctx.records_dir, raw)
    return PatientRecord.model_validate(raw)


def _text(text: str) -> dict[str, str | None]:
    return {"type": "text", "text": text, "image": None}


def test_radiology_impression_golden(ctx: RenderContext) -> None:
    example = RadiologyImpressionTask().render(_record(ctx), ctx)
    assert isinstance(example, Example)
    png = "assets/images/P000001/P000001-CXR1.png"
    assert example.id == "radiology_impression:P000001:E2"
    assert example.messages == [
        {
            "role": "system",
            "content": [
                _text(
                    "You are a radiology assistant working on de-identified studies. Task: from "
                    "the chest X-ray and the report's indication and findings, write the report's "
                    "IMPRESSION. Reply with the impression text only."
                )
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "image", "text": None, "image": png},
                _text(
                    "INDICATION: Fever and cough.\n\n"
                    "FINDINGS: Right lower lobe consolidation. No pleural effusion."
                ),
            ],
        },
        {"role": "assistant", "content": [_text("1. Right lower lobe pneumonia.")]},
    ]
    assert (example.answer, example.label, example.images) == (
        "1. Right lower lobe pneumonia.",
        None,
        [png],
    )
    with PILImage.open(ctx.out_dir / png) as im:
        assert (im.mode, im.size) == ("L", (48, 64))


def test_ecg_rhythm_golden(ctx: RenderContext) -> None:
    example = EcgRhythmTask().render(_record(ctx), ctx)
    assert isinstance(example, Example)
    png = "assets/ecg/P000001/P000001-ECG1.png"
    assert example.messages == [
        {
            "role": "system",
            "content": [
                _text(
                    "You are a cardiology assistant working on de-identified ECGs. Task: name the "
                    "rhythm of the ECG. Answer with exactly one of: atrial_fibrillation, sinus, "
                    "sinus_tachycardia. Reply with the answer only."
                )
            ],
        },
        {
            "role": "user",
            "content": [
                {"type": "image", "text": None, "image": png},
                _text(
                    "12-lead ECG at 25 mm/s and 10 mm/mV: rows I aVR V1 V4 / II aVL V2 V5 / "
                    "III aVF V3 V6 (2.5 s each), then a 10 s lead II rhythm strip. "
                    "What is the rhythm?"
                ),
            ],
        },
        {"role": "assistant", "content": [_text("sinus_tachycardia")]},
    ]
    assert (example.answer, example.label, example.images) == (
        "sinus_tachycardia",
        "sinus_tachycardia",
        [png],
    )
    assert (ctx.out_dir / png).stat().st_size > 0


def test_ecg_input_does_not_include_the_ecg_report(ctx: RenderContext) -> None:
    example = EcgRhythmTask().render(_record(ctx), ctx)
    assert isinstance(example, Example)
    assert "tachycardia" not in str(example.messages[1]["content"]).lower()


def test_impression_answer_has_no_sign_off(ctx: RenderContext) -> None:
    example = RadiologyImpressionTask().render(_record(ctx), ctx)
    assert isinstance(example, Example)
    assert "signed" not in example.answer.lower() and "Dr." not in example.answer


def test_asset_paths_are_file_name_safe() -> None:
    assert asset_path("images", "P 1/../x", "img:1") == "assets/images/P_1_.._x/img_1.png"


def _edit(ctx: RenderContext, **kwargs: object):  # type: ignore[no-untyped-def]
    record = _record(ctx, **kwargs)
    return record, record.encounters[-1]


def test_skip_reasons(ctx: RenderContext) -> None:
    rad, ecg = RadiologyImpressionTask(), EcgRhythmTask()

    record, enc = _edit(ctx)
    enc.images = []
    assert rad.render(record, ctx) == Skip("no_image")

    record, enc = _edit(ctx)
    enc.images[0].modality = "CT"
    assert rad.render(record, ctx) == Skip("no_image")

    record, enc = _edit(ctx)
    enc.notes = [n for n in enc.notes if n.type != "radiology_report"]
    assert rad.render(record, ctx) == Skip("no_radiology_report")

    record, enc = _edit(ctx)
    report = next(n for n in enc.notes if n.type == "radiology_report")
    report.text = "EXAM: CXR\nFINDINGS: Clear lungs.\n"
    assert rad.render(record, ctx) == Skip("no_section:impression")

    assert ecg.render(_record(ctx, rhythm=None), ctx) == Skip("no_label")

    record, enc = _edit(ctx)
    enc.waveforms = []
    assert ecg.render(record, ctx) == Skip("no_waveform")

    record, enc = _edit(ctx)
    enc.waveforms[0].format = "wfdb"
    assert ecg.render(record, ctx) == Skip("unsupported_waveform_format")

    record, enc = _edit(ctx)
    enc.waveforms[0].leads = ["I", "II", "III", "aVR", "aVL", "aVF", "V1", "V2", "V3", "V4", "V5",
                              "V7"]  # fmt: skip
    assert ecg.render(record, ctx) == Skip("ecg_missing_leads")


def test_unreadable_assets_raise_naming_the_file(ctx: RenderContext) -> None:
    record = _record(ctx)
    dicom = ctx.records_dir / record.encounters[-1].images[0].path
    dicom.write_bytes(b"not a dicom file")
    with pytest.raises(AssetError, match=r"P000001-CXR1\.dcm") as info:
        RadiologyImpressionTask().render(record, ctx)
    assert info.value.reason == "unreadable_image"

    wave = ctx.records_dir / record.encounters[-1].waveforms[0].path
    np.save(wave, np.zeros((3, 100), dtype=np.float16), allow_pickle=False)
    with pytest.raises(AssetError, match=r"expected shape \(12, n_samples\)") as info:
        EcgRhythmTask().render(record, ctx)
    assert info.value.reason == "unreadable_waveform"
