"""``clinical-llm compress make|recover|report``: compressed model folders, and who pays.

``make`` writes one compressed variant of a model folder (:mod:`llm.compress`); ``recover``
fine-tunes a pruned one briefly with a recipe (:mod:`llm.train`), keeping its zeros; ``report``
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


@compress_app.command("recover")
def recover(
    pruned: Path = typer.Argument(
        ..., help="A pruned model folder (compress make --method prune-unstructured | prune-2:4)."
    ),
    recipe: Path | None = typer.Option(
        None,
        "--recipe",
        help="Fine-tune PRUNED with this recipe (recipes/*.yaml), in this process: its "
        "model.base becomes PRUNED and method.keep_zeros true (lora and full both work).",
    ),
    run: Path | None = typer.Option(
        None,
        "--run",
        help="Instead of --recipe: a finished run that fine-tuned PRUNED (its "
        "training.output_dir), e.g. one launched with accelerate on several processes.",
    ),
    datasets: Path | None = typer.Option(
        None,
        "--datasets",
        help="Task datasets folder (sets data.dataset_dir); the recipe trains on its train "
        "split and evaluates on validation, never test.",
    ),
    steps: int | None = typer.Option(
        None, "--steps", min=1, help="Optimizer steps (sets training.max_steps): keep it short."
    ),
    overrides: list[str] = typer.Option(
        [],
        "--set",
        help="Override one recipe value, key.sub=value (as `clinical-llm train --set`).",
    ),
    out: Path = typer.Option(
        ...,
        "--out",
        help="Recovered model folder to write (new, empty, or an earlier compress output). "
        "The run goes to OUT.run/ unless --set training.output_dir=... says otherwise.",
    ),
) -> None:
    """Fine-tune a pruned model briefly, keeping its zeros; write it as a compressed variant.

    The fine-tune uses one of the project's recipes. A full fine-tune keeps the pruned
    weights at zero by masking their gradients; a LoRA is merged, and the pruned weights
    are zeroed again (the manifest says how much of its change that kept). The folder
    goes to `compress report` beside the others.
    """
    from llm.compress.folder import check_out
    from llm.compress.recover import pruning_of, write_recovered

    if (recipe is None) == (run is None):
        raise BadInputError("compress recover: give either --recipe (train now) or --run")
    if run is not None and (datasets is not None or steps is not None or overrides):
        raise BadInputError(
            "compress recover: --datasets, --steps and --set configure a new run; "
            "--run takes a finished one as it is"
        )
    pruning = pruning_of(pruned)
    check_out(out)  # before the fine-tune, not after it
    if recipe is not None:
        run = _recovery_run(pruned, recipe, datasets, steps, overrides, out)
    assert run is not None
    recovery = _run_summary(run, pruned)
    export = out.parent / f".{out.name}.export"
    from llm.export import export_run

    try:
        with err_console.status(f"exporting {run}"):
            export_run(run, export, merge=recovery["method"] in ("lora", "qlora"))
        with err_console.status("setting the pruned weights back to zero"):
            result = write_recovered(pruned, export, out, recovery)
    finally:
        import shutil

        shutil.rmtree(export, ignore_errors=True)
    mask = result.manifest["compression"]["recovery"]["mask"]
    print_summary(
        f"{pruning['name']} recovered by {recovery['method']} ({recovery['steps']} steps, "
        f"train loss {recovery['train_loss']}): {mask['zeros']:,} zeros kept, "
        f"{mask['moved']:,} set back ({mask['delta_kept']:.0%} of the fine-tune's change "
        f"kept): {out}/ (manifest.json)"
    )


def _recovery_run(
    pruned: Path,
    recipe: Path,
    datasets: Path | None,
    steps: int | None,
    overrides: list[str],
    out: Path,
) -> Path:
    """Train the recovery run of ``pruned`` with ``recipe`` in this process; its folder."""
    from llm.train.recipe import load_recipe

    ours = [
        f"training.output_dir={out.parent / (out.name + '.run')}",
        *([f"data.dataset_dir={datasets}"] if datasets is not None else []),
        *([f"training.max_steps={steps}", "training.num_epochs=null"] if steps else []),
        *overrides,  # the user's win, but for the two below
        f"model.base={pruned}",
        "method.keep_zeros=true",
    ]
    loaded = load_recipe(recipe, ours)
    from llm.train.trainer import run_training

    err_console.print(
        f"recovery fine-tune of {pruned} ({recipe}, {loaded.method.kind}) -> "
        f"{loaded.training.output_dir}",
        highlight=False,
    )
    return run_training(loaded).output_dir


def _run_summary(run: Path, pruned: Path) -> dict[str, Any]:
    """What the manifest records of the recovery run; refuse a run of another model."""
    from llm.files import read_json_object

    manifest = read_json_object(run / "manifest.json", what="training run manifest")
    base = Path(manifest["model"]["base"])
    if base.resolve() != pruned.resolve():
        raise BadInputError(
            f"{run}: fine-tuned {base}, not {pruned}; recover the folder the run started from"
        )
    config = manifest.get("config", {})
    results = manifest.get("results", {})
    return {
        "run": str(run.resolve()),
        "method": manifest["model"]["method"],
        "keep_zeros": bool(config.get("method", {}).get("keep_zeros", False)),
        "dataset_dir": config.get("data", {}).get("dataset_dir"),
        "tasks": config.get("data", {}).get("tasks"),
        "steps": results.get("global_step"),
        "train_loss": results.get("final_train_loss"),
        "eval_loss": results.get("final_eval_loss"),
    }


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
