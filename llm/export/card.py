"""The model card (``README.md``, Hugging Face format) written with every export.

``clinical-llm export`` writes it from the run and base-model manifests:
YAML front matter (:mod:`llm.export.card_metadata`), then the base model, the
recipe as the run resolved it, a data summary (counts, tasks, splits, hashes:
no note text and no record of any patient), intended use and known limitations.
``clinical-llm eval run --model EXPORT`` rewrites the evaluation section (between
:data:`EVAL_START` and :data:`EVAL_END`) and the ``model-index`` results from
the eval run's ``summary.json`` and each task's ``report.json``: overall metrics
with their intervals, every subgroup, disparities and gate results. A second
evaluation replaces the first; the rest of the card is left as it was.

The card is a living file: the export manifest names it (``card``) but does not
hash it, since an evaluation changes it after the weights are fixed.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import yaml

from llm.errors import BadInputError
from llm.export.card_metadata import MODEL_INDEX, check_metadata
from llm.export.source import RunSource
from llm.files import atomic_write, read_json_object
from llm.manifest import MANIFEST

CARD = "README.md"
EVAL_START = "<!-- clinical-llm:evaluation:start -->"
EVAL_END = "<!-- clinical-llm:evaluation:end -->"
NOT_EVALUATED = (
    "Not evaluated yet. Run `clinical-llm eval run SUITE.yaml --model {out} --out EVAL_DIR`: "
    "it writes this section (subgroup metrics with confidence intervals and release gates)."
)
INTENDED_USE = """\
## Intended use

Clinical decision **support** for qualified clinicians and for research: drafting and
triage suggestions that a clinician reviews before anything reaches a patient or a
record. Use it only within the tasks and the population it was trained and evaluated on
(below), behind the access controls and audit log of the serving gateway.

**Not for autonomous diagnosis or treatment.** Its outputs are not medical advice, must
not be acted on without clinical review, and it is not a medical device cleared by any
regulator.
"""
LIMITATIONS = """\
## Known limitations

- It learned from the training data below and nothing else: populations, sites, note
  styles and tasks outside that data are untested, and accuracy there is unknown.
- Accuracy differs between patient subgroups; read the subgroup tables and gates in
  the evaluation before use, and re-evaluate on your own population. Groups smaller than
  the evaluation's minimum size are reported but not gated.
- Language models can state wrong facts fluently, and their stated confidence is not
  calibrated unless an evaluation shows it.
- A model tuned on clinical text may have memorised parts of it. Train only on
  de-identified records, keep this model inside the environment its data was allowed in,
  and do not publish it without a privacy review.
"""


def _yaml(data: Any) -> str:
    return yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=100)


def _fmt(value: Any) -> str:
    if isinstance(value, bool) or value is None:
        return "n/a" if value is None else str(value)
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return "n/a" if not math.isfinite(value) else f"{value:.3f}"
    return str(value)


def _metric(entry: Any) -> str:
    """``0.912 [0.890, 0.930]`` from ``{"value", "ci"}``."""
    if not isinstance(entry, dict):
        return "n/a"
    text = _fmt(entry.get("value"))
    ci = entry.get("ci")
    if isinstance(ci, list) and len(ci) == 2:
        text += f" [{_fmt(ci[0])}, {_fmt(ci[1])}]"
    return text


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _table(header: list[str], rows: list[list[Any]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------ the card at export


def _base_model_id(base_manifest: dict[str, Any] | None, base_path: Path) -> str:
    source = (base_manifest or {}).get("source")
    if isinstance(source, dict):
        for key in ("hub_id", "repo_id"):
            if isinstance(source.get(key), str) and source[key]:
                return str(source[key])
    return base_path.name


def _license(base_manifest: dict[str, Any] | None) -> str:
    licence = (base_manifest or {}).get("licence") or (base_manifest or {}).get("license")
    return str(licence).lower() if isinstance(licence, str) and licence else "other"


def _read_base_manifest(source: RunSource) -> dict[str, Any] | None:
    path = source.base.path / MANIFEST
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _deid_line(dataset: dict[str, Any]) -> str:
    """What the provenance says about de-identification (never more than it says)."""
    folder = dataset.get("dataset_dir")
    records: Any = None
    if isinstance(folder, str):
        try:
            built = json.loads((Path(folder) / MANIFEST).read_text(encoding="utf-8"))
            records = (built.get("records") or {}).get("path")
        except (OSError, ValueError, AttributeError):
            records = None
    evaluation = Path(records).parent / "deid_eval.json" if isinstance(records, str) else None
    if evaluation is not None and evaluation.is_file():
        try:
            recall = json.loads(evaluation.read_text(encoding="utf-8"))["overall"]["recall"]
        except (OSError, ValueError, KeyError, TypeError):
            recall = None
        return (
            "the records were the output of `clinical-llm data deid` (its evaluation "
            f"beside them measured PHI recall {_fmt(recall)} on the gold spans)"
        )
    return (
        "not recorded in the provenance (the dataset manifest names its records by hash "
        "only); confirm that the records were de-identified (`clinical-llm data deid`) "
        "before sharing this model"
    )


def _data_section(manifest: dict[str, Any]) -> str:
    dataset = manifest.get("dataset") if isinstance(manifest.get("dataset"), dict) else {}
    assert isinstance(dataset, dict)
    tasks = dataset.get("tasks") if isinstance(dataset.get("tasks"), dict) else {}
    assert isinstance(tasks, dict)
    splits: list[str] = []
    for entry in tasks.values():
        counts = entry.get("counts") if isinstance(entry, dict) else None
        for split in counts or {}:
            if split not in splits:
                splits.append(split)
    rows = []
    for task, entry in tasks.items():
        counts = (entry or {}).get("counts") or {}
        answers = (entry or {}).get("answers")
        labels = len(answers) if isinstance(answers, list) else "free text"
        rows.append([task, *[counts.get(s, "n/a") for s in splits], labels])
    text = "## Training data\n\n"
    text += "Counts and hashes only: no note text and no patient record is in this card.\n\n"
    text += _table(["task", *[f"{s} examples" for s in splits], "answer labels"], rows) + "\n"
    for key, what in (("train", "Trained on"), ("eval", "Evaluated during training on")):
        summary = dataset.get(key)
        if not isinstance(summary, dict):
            continue
        stats = summary.get("tokenize") or {}
        read = sum(int(s.get("read", 0)) for s in stats.values())
        used = sum(int(s.get("used", 0)) for s in stats.values())
        rejected = sum(int(s.get("rejected", 0)) for s in stats.values())
        text += (
            f"- {what} the `{summary.get('split')}` split: {summary.get('examples')} examples, "
            f"{summary.get('tokens')} tokens (read {read} = used {used} + rejected {rejected})\n"
        )
    text += (
        f"- Dataset manifest SHA-256: `{dataset.get('manifest_sha256')}`; source records "
        f"SHA-256: `{dataset.get('records_sha256')}`\n"
        f"- De-identification: {_deid_line(dataset)}\n"
    )
    return text


def _recipe_section(manifest: dict[str, Any]) -> str:
    results = manifest.get("results") if isinstance(manifest.get("results"), dict) else {}
    assert isinstance(results, dict)
    facts = [
        f"world size {manifest.get('world_size')}",
        f"precision {manifest.get('precision')}",
        f"DeepSpeed config {manifest.get('deepspeed') or 'none'}",
        f"{results.get('global_step')} steps",
        f"final train loss {_fmt(results.get('final_train_loss'))}",
        f"final eval loss {_fmt(results.get('final_eval_loss'))}",
        f"{results.get('tokens_seen')} tokens seen",
    ]
    return (
        "## Training recipe\n\n"
        "The recipe as the run resolved it (defaults < YAML < `--set`), from the run "
        "manifest:\n\n"
        f"```yaml\n{_yaml(manifest.get('config') or {})}```\n\n"
        f"Run: {', '.join(facts)}; git commit `{manifest.get('git_commit')}`, seed "
        f"{manifest.get('seed')}.\n"
    )


def render_card(source: RunSource, *, name: str, fmt: str, out: Path) -> str:
    """The card of an export, with its evaluation section still empty.

    Args:
        source: the run and saved model exported.
        name: the served model name.
        fmt: ``adapter``, ``merged`` or ``full``.
        out: the export folder (named in the "not evaluated" hint).

    Returns:
        The whole ``README.md`` text.

    Raises:
        BadInputError: the front matter would not be valid card metadata.
    """
    manifest = source.manifest
    base_manifest = _read_base_manifest(source)
    model = manifest.get("model") if isinstance(manifest.get("model"), dict) else {}
    assert isinstance(model, dict)
    tasks = list((manifest.get("dataset") or {}).get("tasks") or {})
    method = "full fine-tune" if source.method == "full" else source.method
    meta: dict[str, Any] = {
        "license": _license(base_manifest),
        "base_model": _base_model_id(base_manifest, source.base.path),
        "library_name": "peft" if fmt == "adapter" else "transformers",
        "pipeline_tag": "image-text-to-text" if source.multimodal else "text-generation",
        "tags": ["clinical", "medical", "clinical-llm", source.method, *tasks],
        # training data stays private; add Hub dataset ids here only if it is published
        "datasets": [],
    }
    check_metadata(meta, where=f"{out / CARD}")
    base = base_manifest.get("model") if isinstance(base_manifest, dict) else None
    architecture = base.get("architecture") if isinstance(base, dict) else None
    body = [
        f"# {name}\n",
        f"`{name}` is {source.base.path.name} tuned by {method} for clinical tasks "
        f"({', '.join(tasks) or 'none recorded'}), exported as **{fmt}** from "
        f"`{source.checkpoint}` of the run `{source.run_dir.name}` by clinical-llm.\n",
        INTENDED_USE,
        "## Base model\n\n"
        f"- `{source.base.path}` ({architecture or 'architecture not recorded'}; "
        f"license {meta['license']}); base manifest SHA-256 `{source.base.manifest_sha256}`\n"
        f"- Method: {method}; parameters {model.get('total_params')}, trainable "
        f"{model.get('trainable_params')}\n",
        _recipe_section(manifest),
        _data_section(manifest),
        f"## Evaluation\n\n{EVAL_START}\n{NOT_EVALUATED.format(out=out)}\n{EVAL_END}\n",
        LIMITATIONS,
        "## Provenance\n\n"
        f"`{MANIFEST}` beside this card lists every exported file with its SHA-256 and the "
        f"run manifest's (`{source.manifest_sha256}`).\n",
    ]
    return f"---\n{_yaml(meta)}---\n\n" + "\n".join(body)


def write_card(folder: Path, text: str) -> Path:
    """Write ``folder/README.md`` through a temporary file. Returns its path."""
    path = folder / CARD
    with atomic_write(path) as fh:
        fh.write(text)
    return path


# ------------------------------------------------------------------ the evaluation section


def _task_section(entry: dict[str, Any], report: dict[str, Any]) -> str:
    task = entry.get("task")
    verdict = "all gates passed" if report.get("passed") else "a gate failed"
    text = (
        f"### {task} (`{entry.get('split')}` split, n = {report.get('n')}; {verdict})\n\n"
        "Overall, with bootstrap confidence intervals:\n\n"
    )
    metrics = [m for m in report.get("metrics") or [] if isinstance(m, str)]
    overall = report.get("overall") or {}
    text += _table(["metric", "value [CI]"], [[m, _metric(overall.get(m))] for m in metrics])
    for attribute, block in (report.get("by_attribute") or {}).items():
        groups = (block or {}).get("groups") or {}
        rows = []
        for group, values in groups.items():
            small = " (small: not gated)" if values.get("small") else ""
            rows.append(
                [f"{group}{small}", values.get("n"), *[_metric(values.get(m)) for m in metrics]]
            )
        text += f"\nBy `{attribute}`:\n\n" + _table(["group", "n", *metrics], rows)
        disparity = (block or {}).get("disparity") or {}
        gaps = [
            f"{m} difference {_fmt(d.get('difference'))} (worst {d.get('worst_group')}, "
            f"best {d.get('best_group')})"
            for m, d in disparity.items()
            if m in metrics and isinstance(d, dict)
        ]
        if gaps:
            text += "\nDisparity: " + "; ".join(gaps) + ".\n"
    gates = report.get("gates") or []
    if gates:
        rows = [
            [
                g.get("name"),
                g.get("attribute") or "overall",
                g.get("metric"),
                g.get("rule"),
                _fmt(g.get("threshold")),
                _fmt(g.get("observed")),
                "passed" if g.get("passed") else "FAILED",
            ]
            for g in gates
        ]
        header = ["gate", "attribute", "metric", "rule", "threshold", "observed", "result"]
        text += "\nGates:\n\n" + _table(header, rows)
    else:
        text += "\nNo gates were set for this task.\n"
    return text


def _model_index_results(
    entries: list[tuple[dict[str, Any], dict[str, Any]]], suite: str
) -> list[dict[str, Any]]:
    results = []
    for entry, report in entries:
        overall = report.get("overall") or {}
        metrics = [
            {"type": name, "value": float(v["value"]), "name": f"{name} ({_metric(v)})"}
            for name, v in overall.items()
            if isinstance(v, dict)
            and isinstance(v.get("value"), int | float)
            and math.isfinite(float(v["value"]))
        ]
        if not metrics:
            continue
        results.append(
            {
                "task": {"type": "text-generation", "name": str(entry.get("task"))},
                "dataset": {
                    "type": f"clinical-llm/{entry.get('task')}",
                    "name": f"{entry.get('task')} ({suite} suite)",
                    "split": str(entry.get("split")),
                },
                "metrics": metrics,
            }
        )
    return results


def _read_eval(
    eval_dir: Path,
) -> tuple[dict[str, Any], list[tuple[dict[str, Any], dict[str, Any]]]]:
    summary = read_json_object(eval_dir / "summary.json", what="eval run summary")
    entries = []
    for entry in summary.get("tasks") or []:
        if not isinstance(entry, dict) or entry.get("status") != "ok":
            continue
        report_path = eval_dir / str(entry.get("task")) / "report.json"
        entries.append((entry, read_json_object(report_path, what="subgroup report")))
    return summary, entries


def split_card(text: str, *, where: str) -> tuple[dict[str, Any], str]:
    """The parsed front matter and the body of a card.

    Raises:
        BadInputError: no front matter, or YAML that is not valid card metadata.
    """
    if not text.startswith("---\n") or "\n---\n" not in text[3:]:
        raise BadInputError(f"{where}: no YAML front matter (a block between '---' lines)")
    head, body = text[4:].split("\n---\n", 1)
    try:
        meta = yaml.safe_load(head)
    except yaml.YAMLError as exc:
        raise BadInputError(f"{where}: front matter is not valid YAML: {exc}") from None
    check_metadata(meta, where=where)
    return meta, body


def update_card_evaluation(export_dir: Path, eval_dir: Path) -> Path:
    """Rewrite an exported model card's evaluation section from an eval run.

    Idempotent: the section between :data:`EVAL_START` and :data:`EVAL_END` and the
    front matter's ``model-index`` are replaced, never appended to.

    Args:
        export_dir: an export folder with its ``README.md``.
        eval_dir: the ``eval run --out`` folder (``summary.json``, ``<task>/report.json``).

    Returns:
        The card's path.

    Raises:
        BadInputError: no card, a card without the evaluation markers, or an
            eval folder without its summary or reports.
    """
    path = export_dir / CARD
    if not path.is_file():
        raise BadInputError(
            f"{path}: no model card; export the run again (`clinical-llm export`) to write one"
        )
    text = path.read_text(encoding="utf-8")
    meta, body = split_card(text, where=str(path))
    if body.count(EVAL_START) != 1 or body.count(EVAL_END) != 1:
        raise BadInputError(
            f"{path}: the evaluation markers {EVAL_START} … {EVAL_END} are missing or "
            "repeated; restore them (or export again) so the section can be replaced"
        )
    summary, entries = _read_eval(eval_dir)
    suite = str(summary.get("suite"))
    verdict = "every gate passed" if summary.get("passed") else "**a release gate failed**"
    section = (
        f"Suite `{suite}`: {summary.get('tasks_run')} task(s) run, "
        f"{summary.get('tasks_skipped')} skipped; {verdict}. From `{eval_dir.resolve()}` "
        "(`summary.json`, `<task>/report.json`); intervals are the report's bootstrap "
        "confidence intervals.\n\n"
    )
    section += "\n".join(_task_section(entry, report) for entry, report in entries)
    before, rest = body.split(EVAL_START, 1)
    after = rest.split(EVAL_END, 1)[1]
    results = _model_index_results(entries, suite)
    meta.pop(MODEL_INDEX, None)
    if results:
        exported = read_json_object(export_dir / MANIFEST, what="export manifest")
        name = exported.get("name") if isinstance(exported.get("name"), str) else None
        meta[MODEL_INDEX] = [{"name": name or export_dir.resolve().name, "results": results}]
    check_metadata(meta, where=str(path))
    new = f"---\n{_yaml(meta)}---\n{before}{EVAL_START}\n{section}{EVAL_END}{after}"
    return write_card(export_dir, new)
