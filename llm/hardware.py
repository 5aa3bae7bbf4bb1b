"""What the machine computes fast: used to pick a precision when a recipe says ``auto``."""

from __future__ import annotations

from pathlib import Path

import torch

CPU_BF16_FLAGS = frozenset({"avx512_bf16", "amx_bf16"})


def cpu_has_native_bf16(cpuinfo: Path = Path("/proc/cpuinfo")) -> bool:
    """True when this x86 CPU multiplies bf16 in hardware (AVX512-BF16 or AMX-BF16).

    There, oneDNN's bf16 matmuls run several times faster than fp32 ones
    (measured on a 2-core AMD EPYC: 985 against 225 GFLOP/s); elsewhere bf16 is
    emulated and slower than fp32. Reads the Linux ``flags`` line; any other
    system (or a missing file) counts as no.
    """
    try:
        text = cpuinfo.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return False
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "flags":
            return not CPU_BF16_FLAGS.isdisjoint(value.split())
    return False


def cpu_auto_precision() -> str:
    """What ``model.dtype: auto`` trains in on this CPU: ``bf16`` where native, else ``fp32``."""
    return "bf16" if cpu_has_native_bf16() else "fp32"


def native_bf16(device: str) -> bool:
    """bf16 compute is native on ``device`` (``"cuda"`` or ``"cpu"``)."""
    if device == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    return cpu_has_native_bf16()
