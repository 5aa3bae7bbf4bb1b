"""Tests of llm.hardware: native bf16 detection."""

from __future__ import annotations

from pathlib import Path

import pytest

from llm.hardware import cpu_has_native_bf16, native_bf16


@pytest.mark.parametrize(
    ("flags", "expected"),
    [
        ("fpu avx2 avx512f avx512_bf16 avx512vl", True),  # Zen 4, Cooper Lake
        ("fpu avx512f amx_bf16 amx_tile", True),  # Sapphire Rapids
        ("fpu avx2 avx512f avx512bw avx512vl", False),  # AVX-512 without bf16
        ("fpu avx2", False),
    ],
)
def test_cpu_has_native_bf16_reads_the_flags_line(
    tmp_path: Path, flags: str, expected: bool
) -> None:
    cpuinfo = tmp_path / "cpuinfo"
    cpuinfo.write_text(f"processor\t: 0\nmodel name\t: X\nflags\t\t: {flags}\n\n")
    assert cpu_has_native_bf16(cpuinfo) is expected


def test_cpu_has_native_bf16_is_false_without_cpuinfo(tmp_path: Path) -> None:
    assert cpu_has_native_bf16(tmp_path / "missing") is False
    (tmp_path / "arm").write_text("processor\t: 0\nFeatures\t: fp asimd bf16\n")
    assert cpu_has_native_bf16(tmp_path / "arm") is False


def test_native_bf16_on_cpu_is_the_cpuinfo_answer(monkeypatch: pytest.MonkeyPatch) -> None:
    from llm import hardware

    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: True)
    assert native_bf16("cpu") is True
    monkeypatch.setattr(hardware, "cpu_has_native_bf16", lambda: False)
    assert native_bf16("cpu") is False
