"""``compress report`` with an OpenVINO IR variant: scored, timed and measured with OpenVINO.

The variant is the eval tests' tiny model exported to IR with fp32 weights
(``tests/compress/openvino_fixtures.py``), compared with ``--openvino-precision f32``: the
OpenVINO runner must then choose every scored answer the torch base chose, with the same
probabilities (so no change anywhere), while its speed comes from ``openvino-genai`` and its
peak memory from a process of its own.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner

from llm.cli import compress as compress_cli
from tests.compress.openvino_fixtures import ensure_export_venv, eval_tiny_fp32_ir  # noqa: F401
from tests.eval.run_assets import EvalAssets, eval_assets  # noqa: F401  (fixture)
from tests.real_components import reason

pytest.importorskip("openvino_genai", reason=reason("openvino", "no openvino-genai"))


def _app() -> typer.Typer:
    app = typer.Typer()
    compress_cli.register(app)

    @app.callback()
    def _root() -> None:
        """Root, so that ``compress`` stays a sub-command."""

    return app


def _rows(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.slow
def test_report_scores_an_fp32_ir_variant_as_its_torch_base(
    eval_assets: EvalAssets,  # noqa: F811
    eval_tiny_fp32_ir: Path,  # noqa: F811
    tmp_path: Path,
) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text(
        f"suite: compress-ov\ndataset_dir: {eval_assets.datasets}\n"
        "tasks: [diagnosis_loglik, readmission_loglik]\nattributes: [sex]\n"
        "min_group_size: 2\nlimit: 6\n"
    )
    out = tmp_path / "report"
    result = CliRunner().invoke(
        _app(),
        [
            "compress",
            "report",
            str(suite),
            "--base",
            str(eval_assets.tiny),
            "--variant",
            str(eval_tiny_fp32_ir),
            "--openvino-precision",
            "f32",
            "--new-tokens",
            "4",
            "--speed-rounds",
            "1",
            "--bootstrap",
            "50",
            "--out",
            str(out),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads((out / "report.json").read_text())
    (entry,) = report["variants"]
    assert entry["name"] == "openvino-fp32"
    assert entry["runtime"]["runner"] == "openvino"
    assert entry["runtime"]["openvino"]["inference_precision_hint"] == "f32"
    assert report["base"]["runtime"]["runner"] == "local"
    # the IR's weights are its .xml + .bin: an fp32 IR is about the safetensors' size
    assert 0.9 < entry["size_ratio"] < 1.2
    assert entry["speed"]["tokens_per_s"] > 0 and entry["speed"]["first_token_s"] > 0
    for memory in (entry["memory"], report["base"]["memory"]):
        assert memory["peak_rss_bytes"] > memory["runtime_rss_bytes"] > 0
    for task in entry["tasks"]:
        assert task["overall"]["change"] == 0.0
        base = _rows(out / "evals" / "base" / task["task"] / "predictions.jsonl")
        ir = _rows(out / "evals" / "openvino-fp32" / task["task"] / "predictions.jsonl")
        assert [r["prediction"] for r in ir] == [r["prediction"] for r in base]
        for b, v in zip(base, ir, strict=True):
            assert v["score"] == pytest.approx(b["score"], abs=1e-4)
    markdown = (out / "report.md").read_text()
    assert "| openvino-fp32 | openvino f32 |" in markdown
    assert "<td>openvino f32</td>" in (out / "report.html").read_text()


@pytest.mark.slow
def test_openvino_runner_generates_the_local_runners_greedy_text(
    eval_assets: EvalAssets,  # noqa: F811
    eval_tiny_fp32_ir: Path,  # noqa: F811
) -> None:
    from eval.runners.base import GenerationParams
    from eval.runners.local import LocalRunner
    from eval.runners.openvino import OpenVINORunner

    prompts = [
        [{"role": "user", "content": "Summarise: fever, cough, consolidation on the X-ray."}],
        [{"role": "user", "content": "Readmitted within 30 days? Heart failure, age 82."}],
    ]
    params = GenerationParams(max_tokens=12)
    expected = LocalRunner(eval_assets.tiny, batch_size=1).generate(prompts, params)
    runner = OpenVINORunner(eval_tiny_fp32_ir, precision="f32")
    assert runner.generate(prompts, params) == expected
    assert runner.describe()["openvino"]["kv_cache_precision"] == "f32"
