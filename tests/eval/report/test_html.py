"""report.html: self-contained (embedded PNGs, no external references), escaped, complete,
deterministic; and rendered by headless Chromium (slow, skipped without it)."""

from __future__ import annotations

import base64
import json
import shutil
import subprocess
from datetime import datetime, timezone
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest

from eval.report.html import REPORT_HTML, render_html
from eval.report.model import ReportValue, SubgroupReport, read_report
from eval.report.plots import PNG_SIGNATURE, attribute_figure
from eval.subgroups.analysis import analyze_subgroups, make_config
from tests.eval.synthetic import random_predictions, write_predictions
from tests.real_components import requires

HOSTILE_GROUP = '<script>alert("x")</script> & "Co" $^{$'
ATTRIBUTES = ["sex", "age_band", "race_ethnicity", "payer", "sex*race_ethnicity"]
STAMP = datetime(1999, 1, 2, 3, 4, 5, tzinfo=timezone.utc)
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


class PageParser(HTMLParser):
    """Collects what the tests check: image sources, links, tags, table rows."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.images: list[str] = []
        self.references: list[str] = []
        self.tags: list[str] = []
        self.rows: list[tuple[dict[str, str | None], list[str]]] = []
        self._row: tuple[dict[str, str | None], list[str]] | None = None
        self._cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        found = dict(attrs)
        for key in ("src", "href"):
            if found.get(key) is not None:
                self.references.append(str(found[key]))
        if tag == "img":
            self.images.append(str(found.get("src")))
        elif tag == "tr":
            self._row = (found, [])
        elif tag in ("td", "th"):
            self._cell = []

    def handle_endtag(self, tag: str) -> None:
        if tag in ("td", "th") and self._cell is not None and self._row is not None:
            self._row[1].append(" ".join("".join(self._cell).split()))
            self._cell = None
        elif tag == "tr" and self._row is not None:
            self.rows.append(self._row)
            self._row = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None:
            self._cell.append(data)


def _parse(html: str) -> PageParser:
    parser = PageParser()
    parser.feed(html)
    parser.close()
    return parser


@pytest.fixture(scope="module")
def report_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real ``eval subgroups`` run whose payer groups include a hostile name."""
    root = tmp_path_factory.mktemp("html")
    rows = random_predictions(600, seed=3)
    for row in rows:
        if row["demographics"]["payer"] == "Self-pay":
            row["demographics"]["payer"] = HOSTILE_GROUP
    predictions = write_predictions(root / "predictions.jsonl", rows)
    (root / "manifest.json").write_text(json.dumps({"name": "tiny <b>model</b>"}))
    gates = root / "gates.yaml"
    gates.write_text(
        '- {attribute: "*", metric: accuracy, rule: max_difference, threshold: 0.08}\n'
        "- {metric: true_positive_rate, rule: min_value, threshold: 0.5}\n",
        encoding="utf-8",
    )
    config = make_config(
        predictions=predictions,
        attributes=ATTRIBUTES,
        metrics=["accuracy", "true_positive_rate", "false_positive_rate"],
        positive_label="yes",
        min_group_size=30,
        bootstrap=50,
        gates=gates,
        out=root / "report",
    )
    analyze_subgroups(config)
    return root / "report"


@pytest.fixture(scope="module")
def report(report_dir: Path) -> SubgroupReport:
    return read_report(report_dir)


@pytest.fixture(scope="module")
def page(report_dir: Path) -> str:
    return (report_dir / REPORT_HTML).read_text(encoding="utf-8")


def test_write_reports_writes_the_html_page(report_dir: Path, page: str) -> None:
    assert page.startswith("<!DOCTYPE html>")
    assert len(page.encode()) < 1_500_000  # dpi 100 keeps it small enough to mail


def test_every_image_is_an_embedded_png(page: str, report: SubgroupReport) -> None:
    parsed = _parse(page)
    # one plot per attribute plus the gaps overview
    assert len(parsed.images) == len(report.by_attribute) + 1
    for src in parsed.images:
        prefix = "data:image/png;base64,"
        assert src.startswith(prefix), src[:40]
        assert base64.b64decode(src[len(prefix) :], validate=True).startswith(PNG_SIGNATURE)


def test_nothing_is_fetched_from_outside(page: str) -> None:
    parsed = _parse(page)
    assert "script" not in parsed.tags and "link" not in parsed.tags
    for reference in parsed.references:
        assert not reference.startswith(("http:", "https:", "//")), reference
    assert "http://" not in page and "https://" not in page


def test_tables_list_every_group_and_small_groups_are_flagged(
    page: str, report: SubgroupReport
) -> None:
    rows = _parse(page).rows
    first_cells = {cells[0] for _, cells in rows if cells}
    for block in report.by_attribute.values():
        for group, entry in block.groups.items():
            label = f"{group} small" if entry.small else group
            assert label in first_cells, label
    small_rows = [cells[0] for attrs, cells in rows if attrs.get("class") == "small"]
    expected = [g for b in report.by_attribute.values() for g, e in b.groups.items() if e.small]
    assert expected, "the synthetic data should have small groups"
    assert [label.removesuffix(" small") for label in small_rows] == expected


def test_data_strings_are_escaped(page: str) -> None:
    assert HOSTILE_GROUP not in page
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &#34;Co&#34; $^{$" in page
    assert "tiny &lt;b&gt;model&lt;/b&gt;" in page


def test_header_gates_and_overall(page: str, report: SubgroupReport) -> None:
    failed = len(report.failed_gates)
    assert failed > 0
    assert f"FAILED: {failed} of {len(report.gates)}" in " ".join(page.split())
    rows = _parse(page).rows
    results = [
        cells[-1].split()[0] for _, cells in rows if cells and cells[-1][:4] in ("PASS", "FAIL")
    ]
    assert results == ["PASS" if g.passed else "FAIL" for g in report.gates]
    assert 'href="../manifest.json"' in page  # the model manifest, relative to the report
    overall: dict[str, str] = {}
    for _, cells in rows:  # the overall table comes before the per-attribute gap tables
        if cells and cells[0] in report.metrics:
            overall.setdefault(cells[0], cells[1])
    for metric in report.metrics:
        assert overall[metric] == f"{report.overall[metric].value:.3f}"


def _one_attribute(report: SubgroupReport, attribute: str) -> SubgroupReport:
    """The report cut down to one attribute (fewer plots: a faster test)."""
    cut = report.model_copy(deep=True)
    cut.by_attribute = {attribute: cut.by_attribute[attribute]}
    cut.gates = [g for g in cut.gates if g.attribute in (None, attribute)]
    return cut


def test_rendering_is_deterministic_but_for_the_timestamp(report: SubgroupReport) -> None:
    cut = _one_attribute(report, "sex*race_ethnicity")
    first = render_html(cut, rendered_at=STAMP)
    assert first == render_html(cut, rendered_at=STAMP)
    later = render_html(cut, rendered_at=STAMP.replace(year=1998))
    assert first.replace("1999-01-02", "1998-01-02") == later


def test_undefined_values_show_na_with_their_note(report: SubgroupReport) -> None:
    changed = _one_attribute(report, "sex")
    group = changed.by_attribute["sex"].groups["female"]
    group.metrics["true_positive_rate"] = ReportValue(value=None, note="no positive reference")
    changed.by_attribute["sex"].disparity["accuracy"].difference = None
    page = render_html(changed, rendered_at=STAMP)
    rows = _parse(page).rows
    female = next(cells for _, cells in rows if cells and cells[0] == "female")
    assert female[3] == "n/a"
    assert 'title="no positive reference"' in page


def test_small_groups_are_drawn_and_plots_are_pngs(report: SubgroupReport) -> None:
    block = report.by_attribute["sex*race_ethnicity"]
    png = attribute_figure(
        "sex*race_ethnicity", block, report.metrics, report.overall, min_group_size=30
    )
    assert png.startswith(PNG_SIGNATURE)
    assert png == attribute_figure(
        "sex*race_ethnicity", block, report.metrics, report.overall, min_group_size=30
    )


@pytest.mark.slow
@requires("chromium", None if CHROMIUM else "chromium not installed: report.html renders unchecked")
def test_chromium_renders_the_page_with_its_plots(report_dir: Path, tmp_path: Path) -> None:
    from PIL import Image

    screenshot = tmp_path / "report.png"
    command = [
        str(CHROMIUM),
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        f"--user-data-dir={tmp_path / 'profile'}",
        f"--screenshot={screenshot}",
        "--window-size=1280,2400",
        (report_dir / REPORT_HTML).resolve().as_uri(),
    ]
    done = subprocess.run(command, capture_output=True, text=True, timeout=120, check=False)
    assert screenshot.is_file(), done.stderr[-2000:]
    image = Image.open(screenshot).convert("RGB")
    assert image.size == (1280, 2400)
    pixels = np.asarray(image, dtype=np.int16)
    # the gaps overview plot is on the first screen: its blue markers (#0072B2) must be
    # there, which only happens when the embedded PNG was decoded and laid out
    blue = int((np.abs(pixels - np.array([0x00, 0x72, 0xB2])) <= 6).all(axis=-1).sum())
    assert blue > 500, f"{blue} plot-blue pixels: the plots did not render"
    # the failed-gates banner (#fdecea) is drawn near the top
    assert (pixels[:200] == np.array([0xFD, 0xEC, 0xEA])).all(axis=-1).any()
