"""scripts/bench_mfu.py (the GPU MFU benchmark) runs and counts right, checked on CPU."""

from __future__ import annotations

from pathlib import Path

from tests.scripts.fixtures import run_script


def test_tiny_run_reports_consistent_figures(tmp_path: Path) -> None:
    args = [
        *("--shape", "tiny", "--steps", "3", "--warmup", "1", "--micro-batch", "2"),
        *("--seq-len", "128", "--no-deepspeed", "--peak-tflops", "2.0"),
        *("--out", str(tmp_path / "trainer")),
    ]
    report = run_script("bench_mfu", args, tmp_path / "mfu.json")
    # 4 layers x (q 256x256 + k, v 256x128 + o 256x256 + gate, up, down 256x688) + head 256x4096
    assert report["matmul_parameters"] == 4 * (2 * 256 * 256 + 2 * 256 * 128 + 3 * 256 * 688) + (
        256 * 4096
    )
    assert report["engine"] == "LlamaForCausalLM" and report["attention"] == "sdpa_varlen"
    assert report["timed_steps"] == 2 and len(report["step_seconds"]) == 3
    assert report["real_tokens_per_s"] > 0 and 0 <= report["padding"] < 0.2
    assert report["mfu"] == report["model_tflops"] / 2.0
    assert 0 < report["attention_share_of_flops"] < 0.5
