"""``clinical-llm compress make|report``: compressed model folders, and who pays for them.

``make`` writes one compressed variant of a model folder (:mod:`llm.compress`); ``report``
evaluates the uncompressed model and its variants with an eval suite and writes the
comparison by subgroup (:mod:`eval.compression`). docs/compression.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

import typer

from llm.cli.common import err_console, out_console, print_summary, track
from llm.errors import BadInputError, CheckFailedError

compress_app = typer.Typer(
    help="Quantise or prune a model folder; compare the variants by subgroup.",
    no_args_is_help=True,
)


def register(app: typer.Typer) -> None:
    """Add the ``compress`` sub-command group to ``app``."""
    app.add_typer(compress_app, name="compress")


def _help(name: str) -> str:
    from llm.compress.methods import CompressionSpec

    return CompressionSpec.model_fields[name].description or ""


@compress_app.command("make")
def make(
    source: Path = typer.Argument(
        ..., help="Model folder to compress (config, *.safetensors, tokenizer)."
    ),
    method: str = typer.Option(
        ...,
        "--method",
        help="int8-dynamic | int4-weight-only | prune-unstructured | prune-2:4 | "
        "openvino-fp32 | openvino-int8 | openvino-int4 (OpenVINO IR, exported in its own venv) | "
        "llmcompressor-w8a8 | llmcompressor-w4a16 (GPTQ, calibrated; compressed-tensors for "
        "vLLM; quantised in its own venv).",
    ),
    sparsity: float | None = typer.Option(None, "--sparsity", help=_help("sparsity")),
    group_size: int | None = typer.Option(
        None,
        "--group-size",
        help=_help("group_size") + " Default 32; openvino-int4 and llmcompressor-w4a16: 64.",
    ),
    calibration_data: Path | None = typer.Option(
        None,
        "--calibration-data",
        help="llmcompressor-*: task datasets folder (<task>/train.jsonl); only the train "
        "split is read.",
    ),
    calibration_samples: int = typer.Option(
        64, "--calibration-samples", min=1, help="llmcompressor-*: train conversations used."
    ),
    max_seq_length: int = typer.Option(
        512, "--max-seq-length", min=16, help="llmcompressor-*: tokens kept per conversation."
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Compressed model folder to write (new, empty, or an earlier compress output).",
    ),
) -> None:
    """Write a compressed copy of a model folder, with a manifest (method, sizes, hashes)."""
    from pydantic import ValidationError

    from llm.compress.folder import compress_model
    from llm.compress.llmcompressor import is_llmcompressor_method
    from llm.compress.methods import CompressionSpec
    from llm.compress.openvino import is_openvino_method

    if is_llmcompressor_method(method):
        if sparsity is not None:
            raise BadInputError(f"compress make: --sparsity does not apply to {method}")
        if calibration_data is None:
            raise BadInputError(
                f"compress make: {method} is calibrated; give --calibration-data "
                "(the task datasets folder, e.g. build/<run>/datasets)"
            )
        settings: dict[str, Any] = {
            "method": method,
            "group_size": group_size,
            "calibration_samples": calibration_samples,
            "max_seq_length": max_seq_length,
        }
        _make_llmcompressor(source, settings, calibration_data, out)
        return
    if calibration_data is not None:
        raise BadInputError(f"compress make: --calibration-data does not apply to {method}")
    if is_openvino_method(method):
        _make_openvino(source, method, sparsity, group_size, out)
        return
    try:
        fields = {"method": method, "sparsity": sparsity, "group_size": group_size}
        spec = CompressionSpec.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise BadInputError(f"compress make: {problems}") from exc
    err_console.print(f"compressing {source} ({spec.name}) ...", highlight=False)
    result = compress_model(source, out, spec)
    size = result.manifest["size"]["weights_bytes"]
    before = result.manifest["source"]["size"]["weights_bytes"]
    print_summary(
        f"{spec.name}: weights {size / 1e6:.1f} MB ({size / before:.2f}× of "
        f"{before / 1e6:.1f} MB) in {result.manifest['seconds']:.1f} s: {out}/ (manifest.json)"
    )


def _make_openvino(
    source: Path, method: str, sparsity: float | None, group_size: int | None, out: Path
) -> None:
    from pydantic import ValidationError

    from llm.compress.openvino import OpenVINOSpec, export_openvino

    if sparsity is not None:
        raise BadInputError(f"compress make: --sparsity does not apply to {method}")
    fields = {"method": method, "group_size": group_size}
    try:
        spec = OpenVINOSpec.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise BadInputError(f"compress make: {problems}") from exc
    err_console.print(f"exporting {source} to OpenVINO IR ({spec.name}) ...", highlight=False)
    result = export_openvino(source, out, spec)
    size = result.manifest["size"]["weights_bytes"]
    before = result.manifest["source"]["size"]["weights_bytes"]
    print_summary(
        f"{spec.name}: IR {size / 1e6:.1f} MB ({size / before:.2f}× of {before / 1e6:.1f} MB) "
        f"in {result.manifest['seconds']:.1f} s: {out}/ (manifest.json)"
    )


def _make_llmcompressor(
    source: Path, fields: dict[str, Any], calibration_data: Path, out: Path
) -> None:
    from pydantic import ValidationError

    from llm.compress.llmcompressor import LLMCompressorSpec, quantize_llmcompressor

    try:
        spec = LLMCompressorSpec.model_validate({k: v for k, v in fields.items() if v is not None})
    except ValidationError as exc:
        problems = "; ".join(e["msg"] for e in exc.errors())
        raise BadInputError(f"compress make: {problems}") from exc
    err_console.print(f"quantising {source} with llm-compressor ({spec.name}) ...", highlight=False)
    result = quantize_llmcompressor(source, out, spec, datasets=calibration_data)
    size = result.manifest["size"]["weights_bytes"]
    before = result.manifest["source"]["size"]["weights_bytes"]
    print_summary(
        f"{spec.name}: weights {size / 1e6:.1f} MB ({size / before:.2f}× of "
        f"{before / 1e6:.1f} MB), calibrated on {result.manifest['calibration']['samples']} "
        f"train conversations, in {result.manifest['seconds']:.1f} s: {out}/ (manifest.json)"
    )


def _progress(items: Iterable[Any], total: int | None, description: str) -> Iterable[Any]:
    return track(items, description=description, total=total)


@compress_app.command("report")
def report(
    suite: Path = typer.Argument(..., help="Eval suite file (YAML) with labelled tasks."),
    base: Path = typer.Option(..., "--base", help="The uncompressed model folder."),
    variants: list[Path] = typer.Option(
        ..., "--variant", help="A compressed model folder (repeatable)."
    ),
    margin: float = typer.Option(
        0.02, "--margin", help="Largest accuracy loss any subgroup may show (0.02: 2 points)."
    ),
    judge: str = typer.Option(
        "ci",
        "--judge",
        help="ci: fail when the interval's upper bound shows a loss beyond the margin; "
        "ci_conservative: when its lower bound does not rule one out; point: the estimate.",
    ),
    bootstrap: int = typer.Option(
        1000, "--bootstrap", min=0, help="Paired bootstrap resamples of every change."
    ),
    new_tokens: int = typer.Option(64, "--new-tokens", min=1, help="Tokens per timed generation."),
    speed_rounds: int = typer.Option(3, "--speed-rounds", min=1, help="Timed rounds per model."),
    batch_size: int = typer.Option(8, "--batch-size", min=1, help="Eval prompts per batch."),
    limit: int | None = typer.Option(
        None, "--limit", min=1, help="Evaluate only the first N examples of every task."
    ),
    openvino_precision: str = typer.Option(
        "default",
        "--openvino-precision",
        help="How OpenVINO IR variants compute. default: the runtime's defaults, as "
        "`serve --backend openvino` serves (bf16 compute and an f16 KV cache on CPUs with "
        "bf16); f32: f32 compute and KV cache, so only the weights differ.",
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Override a suite setting, key=value (repeatable)."
    ),
    out: Path = typer.Option(
        ..., "--out", help="Report folder (report.json, report.md, evals/<model>/)."
    ),
) -> None:
    """Evaluate the base model and every variant; report changes by subgroup; gate them.

    Exit 0 when every variant passes the gate, 1 when one fails (after writing everything),
    2 on bad input.
    """
    from eval.compression.gate import JUDGES
    from eval.compression.run import ReportOptions, compression_report
    from eval.tasks.suite import load_suite
    from llm.models.openvino_ir import PRECISIONS

    if judge not in JUDGES:
        raise BadInputError(f"--judge must be one of {', '.join(JUDGES)}, got {judge!r}")
    if openvino_precision not in PRECISIONS:
        raise BadInputError(
            f"--openvino-precision must be one of {', '.join(PRECISIONS)}, "
            f"got {openvino_precision!r}"
        )
    loaded = load_suite(suite, overrides)
    options = ReportOptions(
        margin=margin,
        judge=judge,  # checked against JUDGES above
        bootstrap=bootstrap,
        new_tokens=new_tokens,
        speed_rounds=speed_rounds,
        batch_size=batch_size,
        limit=limit,
        openvino_precision=openvino_precision,  # checked against PRECISIONS above
    )
    result = compression_report(
        loaded,
        suite,
        base,
        variants,
        out,
        options=options,
        overrides=overrides,
        progress=_progress,
        log=lambda line: err_console.print(line, highlight=False),
    )
    from eval.compression.report import render_markdown

    summary_table = render_markdown(result).split("\n## ", 1)[0]
    out_console.print(summary_table, highlight=False, markup=False, soft_wrap=True)
    failed = [v.name for v in result.variants if not v.gate.passed]
    print_summary(
        f"{len(result.variants)} variant(s) compared, {len(failed)} failed the gate: "
        f"{out}/report.json, report.md"
    )
    if failed:
        raise CheckFailedError(
            f"variant(s) {', '.join(failed)}: a subgroup lost more than {margin:g}; "
            f"see {out}/report.md"
        )
