"""``clinical-llm demo``: the main job end to end on the embedded defaults.

The demo runs the same CLI verbs a user would type, and prints each one first,
so it doubles as a walkthrough:

1. ``data synth``: a synthetic cohort with a documentation bias against one
   subgroup (``race_ethnicity=Black:0.3``), so the fairness check has
   something real to find;
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
   with the release gates of ``eval/suites/gates/clinical-core.yaml`` that
   apply to the two trained tasks (written to ``gates.yaml`` in the demo folder).

A failing gate does not fail the demo: catching the planted bias is what the
gate is for. The demo lists every failed gate with the worst group, and says
whether one of them singles out the planted group; a model too weak to show
the bias fails gap gates for other groups too (its errors follow each group's
label base rate), and the demo says so rather than claiming the catch. Any
other non-zero exit stops the demo with the step named. The last lines print
the command that serves the exported model.
"""

from __future__ import annotations

import json
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

from llm.cli.common import err_console, print_summary
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
DEMO_GATES: list[dict[str, Any]] = [
    {"name": "accuracy gap between groups", "attribute": "*", "metric": "accuracy",
     "rule": "max_difference", "threshold": 0.10, "use": "point"},
    {"name": "readmission sensitivity in every group", "attribute": "*",
     "metric": "true_positive_rate", "rule": "min_value", "threshold": 0.50, "use": "point"},
]  # fmt: skip
# 60/10/30 by patient: at the default 400 patients, 120 test patients keep the
# larger race/ethnicity groups (the biased one included) above the demo's minimum
# group size, so the gates compare them; smaller groups are reported as small.
DEMO_SPLIT = "0.6,0.1,0.3"
DEMO_MIN_GROUP_SIZE = 10
# Exit code of `eval run` when every output was written but a gate failed.
GATE_FAILED = 1
DEMO_MODEL_NAME = "demo"
# The documentation bias the demo cohort is synthesized with (attribute, group).
PLANTED_BIAS = ("race_ethnicity", "Black")


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
    def key(self) -> Path:
        return self.out / "deid.key"

    @property
    def gates(self) -> Path:
        return self.out / "gates.yaml"


def demo_steps(
    out: Path, patients: int, seed: int, *, steps: int | None = None, init_steps: int | None = None
) -> list[DemoStep]:
    """The CLI commands the demo runs, in order.

    Args:
        out: the demo folder.
        patients: size of the synthetic cohort.
        seed: seed of the cohort, the splits and the model.
        steps: fine-tuning optimizer steps (default: the recipe's).
        init_steps: pretraining steps of ``model init`` (default: its own).

    Returns:
        The steps; each ``argv`` leaves out the program name.
    """
    at = DemoLayout(out)
    records, deid_records = at.cohort / "records.jsonl", at.deid / "records.jsonl"
    init = ["model", "init", "--records", str(deid_records), "--out", str(at.model),
            "--seed", str(seed), "--multimodal",
            "--exclude-eval-patients-of", str(at.datasets)]  # fmt: skip
    if init_steps is not None:
        init += ["--steps", str(init_steps)]
    train = ["train", str(DEMO_RECIPE),
             "--set", f"model.base={at.model}",
             "--set", f"data.dataset_dir={at.datasets}",
             "--set", f"training.output_dir={at.run}",
             "--set", f"training.seed={seed}"]  # fmt: skip
    if steps is not None:
        train += ["--set", f"training.max_steps={steps}"]
    return [
        DemoStep(["data", "synth", "--patients", str(patients), "--seed", str(seed),
                  "--bias", f"{PLANTED_BIAS[0]}={PLANTED_BIAS[1]}:0.3", "--out", str(at.cohort)]),
        DemoStep(["data", "validate", str(records)]),
        DemoStep(["data", "deid", str(records), str(deid_records), "--strategy", "surrogate",
                  "--key-file", str(at.key), "--evaluate"]),
        DemoStep(["data", "build", "--records", str(deid_records), "--tasks", DEMO_TASKS,
                  "--split", DEMO_SPLIT, "--seed", str(seed), "--out", str(at.datasets)]),
        DemoStep(init),
        DemoStep(train),
        DemoStep(["export", str(at.run), "--out", str(at.export), "--merge",
                  "--name", DEMO_MODEL_NAME]),
        DemoStep(["eval", "run", str(DEMO_SUITE), "--model", str(at.export),
                  "--set", f"dataset_dir={at.datasets}", "--set", f"tasks={EVAL_TASKS}",
                  "--set", f"gates={at.gates}",
                  "--set", f"min_group_size={DEMO_MIN_GROUP_SIZE}", "--set", "bootstrap=200",
                  "--out", str(at.eval)], accepted_codes=(0, GATE_FAILED)),
    ]  # fmt: skip


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
) -> tuple[float, list[int]]:
    """Run every demo step through ``run`` (the CLI's ``main``); stop at the first failure.

    Args:
        out: the demo folder.
        patients: size of the synthetic cohort.
        seed: seed of every stage.
        run: runs one command (argv without the program name) and returns its exit code.
        steps: fine-tuning steps (default: the recipe's).
        init_steps: pretraining steps of ``model init`` (default: its own).

    Returns:
        Wall-clock seconds the demo took, and each step's exit code.

    Raises:
        CheckFailedError: a step exited with a code it may not end with.
        BadInputError: ``out/run`` holds something that is not an earlier demo run.
    """
    at = DemoLayout(out)
    _prepare(at)
    started = time.perf_counter()
    plan = demo_steps(out, patients, seed, steps=steps, init_steps=init_steps)
    codes: list[int] = []
    for i, step in enumerate(plan, start=1):
        err_console.rule(f"[bold]step {i}/{len(plan)}")
        err_console.print(
            f"$ clinical-llm {shlex.join(step.argv)}", highlight=False, soft_wrap=True
        )
        code = run(step.argv)
        if code not in step.accepted_codes:
            raise CheckFailedError(
                f"demo step {i} failed with exit code {code}: {shlex.join(step.argv)}"
            )
        codes.append(code)
    return time.perf_counter() - started, codes


def failed_gates(eval_dir: Path) -> list[dict[str, Any]]:
    """The failed gates of an ``eval run`` folder, each with the task it failed on.

    Args:
        eval_dir: the ``eval run`` output folder (``<task>/report.json``).

    Returns:
        Gate entries of the reports' ``gates`` lists whose ``passed`` is false,
        with ``task`` added; empty when every gate passed.
    """
    failed: list[dict[str, Any]] = []
    for path in sorted(eval_dir.glob("*/report.json")):
        report = json.loads(path.read_text(encoding="utf-8"))
        for gate in report.get("gates", []):
            if gate.get("passed") is False:
                disparity = (
                    report.get("by_attribute", {})
                    .get(gate.get("attribute"), {})
                    .get("disparity", {})
                )
                worst = disparity.get(gate.get("metric"), {}).get("worst_group")
                failed.append({"task": path.parent.name, "worst_group": worst, **gate})
    return failed


def caught_planted_bias(gates: list[dict[str, Any]]) -> bool:
    """Whether a failed gate names the planted group as the worst one of its attribute.

    A weak model fails gap gates too (its errors follow each group's label base
    rate); only a failure whose worst group is the degraded one is the bias.
    """
    attribute, group = PLANTED_BIAS
    return any(
        attribute in str(g.get("attribute", "")).split("*")
        and group in str(g.get("worst_group") or "").split("*")
        for g in gates
    )


def _number(value: Any) -> str:
    return f"{value:.3f}" if isinstance(value, float) else str(value)


def serve_command(at: DemoLayout) -> str:
    """The command that serves the demo's exported model."""
    return f"clinical-llm serve --model {DEMO_MODEL_NAME}={at.export}"


def register(app: typer.Typer) -> None:
    """Add the ``demo`` command to ``app``."""
    app.command("demo")(demo)


def demo(
    out: Path = typer.Option(Path("build/demo"), "--out", help="Folder for every demo output."),
    patients: int = typer.Option(
        400, "--patients", min=20, help="Size of the synthetic cohort (30% of it is held out)."
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
) -> None:
    """Run the whole job on the embedded defaults: data, model, fine-tune, export, evaluation.

    Exits 0 when every step ran, even if a release gate failed (the demo plants a
    bias for the gates to catch); non-zero when a step itself failed.
    """
    from llm.cli import main  # the demo drives the real CLI, verb by verb

    at = DemoLayout(out)
    seconds, _ = run_demo(out, patients, seed, main, steps=steps, init_steps=init_steps)
    err_console.rule()
    gates = failed_gates(at.eval)
    for gate in gates:
        err_console.print(
            f"  gate failed: {gate['task']}: {gate['name']} on {gate['attribute']} "
            f"({gate['metric']} {gate['rule']} {gate['threshold']}): observed "
            f"{_number(gate['observed'])}, worst group {gate['worst_group']}",
            highlight=False,
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
            f"group ({planted}) as the worst:[/] the tiny model is too weak to show the "
            "bias, and its errors follow each group's label base rate (docs/training.md). "
            "The demo goes on.",
            highlight=False,
        )
    else:
        err_console.print(
            f"Every release gate passed: the gates did not see the planted bias ({planted}).",
            highlight=False,
        )
    err_console.print(f"Reports: {at.eval}/<task>/report.md (and report.json, report.html)")
    err_console.print(f"Serve the model:  {serve_command(at)}", highlight=False, soft_wrap=True)
    print_summary(
        f"demo finished in {seconds:.0f} s: model in {at.export}, evaluation in {at.eval}, "
        f"run in {at.run}, datasets in {at.datasets}"
    )
