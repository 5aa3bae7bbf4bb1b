from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from llm.data.assets import (
    AssetError,
    dicom_to_png,
    ecg_to_png,
    image_to_png,
    render_ecg_sheet,
    window_to_uint8,
)
from tests.data.tasks.records import ECG_LEAD_NAMES, chest_pixels, ecg_signal, write_dicom


def _sha(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_window_follows_the_dicom_linear_function() -> None:
    pixels = np.array([[0, 999, 1000, 1500, 2000, 2001, 4095]])
    out = window_to_uint8(pixels, center=1500, width=1000)
    assert out.tolist() == [[0, 0, 0, 128, 255, 255, 255]]
    assert out.dtype == np.uint8
    assert window_to_uint8(pixels, center=1500, width=1000, invert=True)[0, 0] == 255


def test_without_window_the_range_is_stretched() -> None:
    out = window_to_uint8(np.array([[100, 200, 300]]), center=None, width=None)
    assert out.tolist() == [[0, 128, 255]]
    assert window_to_uint8(np.full((2, 2), 7), center=None, width=None).max() == 0


def test_dicom_to_png_size_mode_and_window(tmp_path: Path) -> None:
    src = write_dicom(tmp_path / "cxr.dcm", chest_pixels(64, 48), window=(1500.0, 3000.0))
    dst = tmp_path / "out" / "cxr.png"
    assert dicom_to_png(src, dst) == (48, 64)
    with Image.open(dst) as im:
        assert (im.format, im.mode, im.size) == ("PNG", "L", (48, 64))
        arr = np.asarray(im)
    expected = window_to_uint8(chest_pixels(64, 48), center=1500.0, width=3000.0)
    assert np.array_equal(arr, expected)
    assert arr.max() == 255  # the bright blob saturates


def test_monochrome1_is_inverted(tmp_path: Path) -> None:
    pixels = chest_pixels(16, 16)
    normal = write_dicom(tmp_path / "m2.dcm", pixels)
    inverted = write_dicom(tmp_path / "m1.dcm", pixels, photometric="MONOCHROME1")
    dicom_to_png(normal, tmp_path / "m2.png")
    dicom_to_png(inverted, tmp_path / "m1.png")
    a = np.asarray(Image.open(tmp_path / "m2.png")).astype(int)
    b = np.asarray(Image.open(tmp_path / "m1.png")).astype(int)
    assert np.array_equal(a, 255 - b)


def test_dicom_rendering_is_deterministic(tmp_path: Path) -> None:
    src = write_dicom(tmp_path / "cxr.dcm", chest_pixels(), window=(1500.0, 3000.0))
    dicom_to_png(src, tmp_path / "a.png")
    dicom_to_png(src, tmp_path / "b.png")
    assert (tmp_path / "a.png").read_bytes() == (tmp_path / "b.png").read_bytes()


def test_unreadable_dicom_names_the_file(tmp_path: Path) -> None:
    bad = tmp_path / "broken.dcm"
    bad.write_bytes(b"\x00" * 10)
    with pytest.raises(AssetError, match=r"broken\.dcm: cannot read DICOM"):
        dicom_to_png(bad, tmp_path / "x.png")
    assert not (tmp_path / "x.png").exists()


def test_png_input_is_reencoded_as_grayscale(tmp_path: Path) -> None:
    src = tmp_path / "rgb.png"
    Image.new("RGB", (10, 6), (200, 10, 10)).save(src)
    assert image_to_png(src, tmp_path / "out.png") == (10, 6)
    assert Image.open(tmp_path / "out.png").mode == "L"
    (tmp_path / "junk.png").write_text("nope")
    with pytest.raises(AssetError, match=r"junk\.png"):
        image_to_png(tmp_path / "junk.png", tmp_path / "out2.png")


def test_ecg_sheet_size_and_deterministic_bytes(tmp_path: Path) -> None:
    src = tmp_path / "ecg.npy"
    np.save(src, ecg_signal(), allow_pickle=False)
    size = ecg_to_png(src, tmp_path / "a.png", ECG_LEAD_NAMES, 500)
    ecg_to_png(src, tmp_path / "b.png", ECG_LEAD_NAMES, 500)
    assert size == (1060, 520)
    assert _sha(tmp_path / "a.png") == _sha(tmp_path / "b.png")
    with Image.open(tmp_path / "a.png") as im:
        assert (im.mode, im.size) == ("P", (1060, 520))
        assert im.convert("RGB").getpixel((0, 0)) == (240, 150, 150)  # a major grid line


def test_ecg_trace_follows_the_signal() -> None:
    flat = render_ecg_sheet(np.zeros((12, 5000), np.float32), ECG_LEAD_NAMES, 500)
    beating = render_ecg_sheet(ecg_signal().astype(np.float32), ECG_LEAD_NAMES, 500)
    black_flat = np.asarray(flat.convert("RGB")).sum(axis=2) == 0
    black_beating = np.asarray(beating.convert("RGB")).sum(axis=2) == 0
    # A flat signal draws straight baselines; QRS spikes add ink above them.
    assert black_beating.sum() > black_flat.sum() * 1.5
    rows_with_ink = np.flatnonzero(black_flat[:, 330:530].any(axis=1))
    # four 2-px baselines at 60% of each 30 mm row (4 px/mm), between labels and markers
    assert rows_with_ink.tolist() == [92, 93, 212, 213, 332, 333, 452, 453]
    # Grid on the paper: minor and major line colours are both present.
    colours = {tuple(c) for c in np.asarray(flat.convert("RGB")).reshape(-1, 3).tolist()}
    assert colours == {(255, 255, 255), (252, 215, 215), (240, 150, 150), (0, 0, 0)}


def test_ecg_lead_order_is_by_name_not_position() -> None:
    signal = ecg_signal().astype(np.float32)
    order = list(reversed(range(12)))
    shuffled = render_ecg_sheet(signal[order], [ECG_LEAD_NAMES[i] for i in order], 500)
    reference = render_ecg_sheet(signal, ECG_LEAD_NAMES, 500)
    assert shuffled.tobytes() == reference.tobytes()


def test_ecg_bad_arrays_name_the_file(tmp_path: Path) -> None:
    src = tmp_path / "short.npy"
    np.save(src, np.zeros((11, 10)), allow_pickle=False)
    with pytest.raises(AssetError, match=r"short\.npy: expected shape \(12, n_samples\)"):
        ecg_to_png(src, tmp_path / "x.png", ECG_LEAD_NAMES, 500)
    pickled = tmp_path / "obj.npy"
    np.save(pickled, np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(AssetError, match=r"obj\.npy: expected real numbers .*got dtype object"):
        ecg_to_png(pickled, tmp_path / "x.png", ECG_LEAD_NAMES, 500)
    renamed = [*ECG_LEAD_NAMES[:-1], "V7"]
    np.save(src, np.zeros((12, 10)), allow_pickle=False)
    with pytest.raises(AssetError, match="lacks lead"):
        ecg_to_png(src, tmp_path / "x.png", renamed, 500)
