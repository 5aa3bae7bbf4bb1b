"""report.json and report.md of a comparison, built from hand-made prediction sets."""

from __future__ import annotations

import base64
import json
import re
from pathlib import Path

from eval.compression.changes import task_changes
from eval.compression.gate import check_compression_gate
from eval.compression.html import write_html
from eval.compression.memory import PeakMemory
from eval.compression.plots import PNG_SIGNATURE
from eval.compression.report import CompressionReport, VariantEntry, write_report
from eval.compression.speed import Speed
from tests.eval.compression.test_changes_and_gate import BASE, HURTS_WOMEN

OPENVINO_RUNTIME = {
    "runner": "openvino",
    "precision": "default",
    "openvino": {"inference_precision_hint": "bf16", "kv_cache_precision": "f16"},
}


def _entry(name: str, rows: list[dict[str, object]]) -> VariantEntry:
    changes = [task_changes("diagnosis", BASE, rows, attributes=["sex"], bootstrap=500)]
    return VariantEntry(
        name=name,
        folder=Path(name),
        manifest={"compression": {"name": name, "method": "int8-dynamic"}},
        weights_bytes=250,
        speed=Speed(tokens_per_s=30.0, first_token_s=0.05, rounds=3),
        memory=PeakMemory(runtime_rss_bytes=100_000_000, peak_rss_bytes=300_000_000),
        runtime=OPENVINO_RUNTIME if name == "same" else {"runner": "local", "device": "cpu"},
        tasks=changes,
        gate=check_compression_gate(changes, margin=0.02),
    )


def _report() -> CompressionReport:
    return CompressionReport(
        suite="s",
        confidence=0.95,
        min_group_size=5,
        base_folder=Path("base"),
        base_weights_bytes=1000,
        base_speed=Speed(tokens_per_s=10.0, first_token_s=0.1, rounds=3),
        base_memory=PeakMemory(runtime_rss_bytes=500_000_000, peak_rss_bytes=1_200_000_000),
        base_runtime={"runner": "local", "device": "cpu"},
        variants=[_entry("same", BASE), _entry("hurts", HURTS_WOMEN)],
    )


def test_report_names_the_losing_group_and_the_failed_variant(tmp_path: Path) -> None:
    report = _report()
    json_path, md_path = write_report(report, tmp_path)
    data = json.loads(json_path.read_text())
    assert data["passed"] is False
    same, hurts = data["variants"]
    assert (same["gate"]["passed"], hurts["gate"]["passed"]) == (True, False)
    assert hurts["size_ratio"] == 0.25 and hurts["speedup"] == 3.0
    assert hurts["memory"] == {
        "peak_rss_bytes": 300_000_000,
        "runtime_rss_bytes": 100_000_000,
        "model_rss_bytes": 200_000_000,
    }
    assert hurts["peak_memory_ratio"] == 0.25
    assert data["base"]["memory"]["peak_rss_bytes"] == 1_200_000_000
    assert same["runtime"] == OPENVINO_RUNTIME
    task = hurts["tasks"][0]
    assert task["worst_group"]["group"] == "female"
    assert task["worst_group"]["change"] == -0.15
    assert task["by_attribute"]["sex"]["female"]["base"] == 1.0
    assert same["tasks"][0]["worst_group"] is None
    markdown = md_path.read_text()
    assert (
        "| hurts | torch | 0.0 MB | 0.25 | 300.0 MB | 30.0 | 3.00 | 50 ms | sex=female: -15.0 ["
        in markdown
    )
    assert "| same | openvino bf16 | 0.0 MB |" in markdown
    assert "| base | torch | 0.0 MB | 1.00 | 1200.0 MB |" in markdown
    # the gate names its own failing group, the one that lost most by the judged value
    assert "| FAIL: sex=female (diagnosis) |" in markdown and "| same |" in markdown
    assert "diagnosis: sex=female: ci change" in markdown


def test_html_inlines_both_figures_and_names_the_failure(tmp_path: Path) -> None:
    html = write_html(_report(), tmp_path).read_text()
    images = re.findall(r'src="data:image/png;base64,([^"]+)"', html)
    assert len(images) == 2  # one task: changes per subgroup, accuracy-size frontier
    assert all(base64.b64decode(png).startswith(PNG_SIGNATURE) for png in images)
    assert "diagnosis: sex=female: ci change" in html
    assert '<td class="fail">FAIL: sex=female (diagnosis)</td>' in html
    assert "<td>openvino bf16</td>" in html and "<td>1200</td>" in html
