"""``clinical-llm launch RECIPE --nodes N --gpus-per-node G --scheduler slurm|k8s``.

Multi-node training.

Submits one DeepSpeed run over N nodes through the cluster's scheduler
(``sbatch deploy/slurm/train.sbatch`` or ``kubectl apply`` of an Indexed Job and
a headless Service); ``--dry-run`` prints the submission and the exact
``accelerate launch`` command of every node instead. The plan and the
manifests are built by :mod:`llm.train.cluster`; see docs/training.md "Multi-node".
"""

from __future__ import annotations

import shlex
import shutil
import subprocess
from enum import Enum
from pathlib import Path

import typer
import yaml

from llm.cli.common import out_console, print_summary
from llm.errors import BadInputError


class SchedulerName(str, Enum):
    """Cluster schedulers a launch can target."""

    slurm = "slurm"
    k8s = "k8s"


def register(app: typer.Typer) -> None:
    """Add the ``launch`` command to ``app``."""
    app.command("launch")(launch)


def launch(
    recipe: Path = typer.Argument(
        ..., help="Recipe YAML; the same relative path must resolve on every node."
    ),
    nodes: int = typer.Option(..., "--nodes", min=1, help="Machines to train on."),
    gpus_per_node: int = typer.Option(
        ..., "--gpus-per-node", min=1, help="Processes (GPUs) per machine."
    ),
    scheduler: SchedulerName = typer.Option(
        ..., "--scheduler", help="slurm (sbatch) or k8s (Indexed Job + headless Service)."
    ),
    dry_run: bool = typer.Option(
        False, "--dry-run", help="Print the submission and every node's command; submit nothing."
    ),
    accelerate_config: str | None = typer.Option(
        None,
        "--accelerate-config",
        help="accelerate config (DeepSpeed) every node uses; default: the recipe's "
        "launch.accelerate_config. Its num_processes must equal nodes x GPUs per node.",
    ),
    main_process_ip: str | None = typer.Option(
        None,
        "--main-process-ip",
        help="Head node address. Default: Slurm takes the allocation's first host "
        "($MAIN_PROCESS_IP in the script); k8s uses pod 0 of the Job (<job>-0.<job>).",
    ),
    main_process_port: int = typer.Option(
        29500, "--main-process-port", help="Free TCP port on the head node (rendezvous)."
    ),
    job: str = typer.Option(
        "clinical-llm-train", "--job", help="k8s: Job and Service name (a DNS label)."
    ),
    image: str = typer.Option(
        "clinical-llm-train:0.1.0",
        "--image",
        help="k8s: training image (repository checkout as workdir).",
    ),
    claim: str = typer.Option(
        "clinical-llm-shared",
        "--claim",
        help="k8s: PersistentVolumeClaim (ReadWriteMany) mounted at /shared on every pod.",
    ),
    resume: bool = typer.Option(
        False,
        "--resume",
        help="Every node continues from the newest complete checkpoint in training.output_dir "
        "(on shared storage): how a run lost with a node is restarted.",
    ),
    overrides: list[str] = typer.Option(
        [], "--set", help="Recipe override passed to every node's `llm.train --set` (repeatable)."
    ),
) -> None:
    """Train RECIPE on several nodes with DeepSpeed, through Slurm or Kubernetes."""
    from llm.train import cluster
    from llm.train.recipe import load_recipe

    # the recipe's cross-checks run with the config the nodes will use
    chosen = [f"launch.accelerate_config={accelerate_config}"] if accelerate_config else []
    load_recipe(recipe, [*overrides, *chosen])
    k8s = scheduler is SchedulerName.k8s
    head = main_process_ip or (cluster.k8s_head(job) if k8s else cluster.SLURM_HEAD)
    plan = cluster.plan_launch(
        str(recipe),
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        accelerate_config=accelerate_config,
        recipe_config=load_recipe(recipe, overrides).launch.accelerate_config,
        main_process_ip=head,
        main_process_port=main_process_port,
        overrides=tuple(overrides),
        resume=resume,
    )
    if not k8s and main_process_ip is not None and not dry_run:
        raise BadInputError(
            "--main-process-ip with --scheduler slurm: the script takes the head node from "
            "the allocation; the option only fills in the dry run's commands"
        )
    text = cluster.render_dry_run(plan, scheduler.value, job=job)
    documents = cluster.k8s_manifests(plan, job=job, image=image, claim=claim) if k8s else []
    manifests = yaml.safe_dump_all(documents, sort_keys=False, width=100) if k8s else ""
    if dry_run:
        out_console.print(
            text + ("---\n" + manifests if k8s else ""),
            end="",
            highlight=False,
            markup=False,
            soft_wrap=True,
        )
        return
    tool = "kubectl" if k8s else "sbatch"
    if shutil.which(tool) is None:
        raise BadInputError(
            f"{tool} is not on PATH; run on a {scheduler.value} login node, or use --dry-run"
        )
    argv = ["kubectl", "apply", "-f", "-"] if k8s else cluster.sbatch_argv(plan)
    proc = subprocess.run(argv, input=manifests if k8s else None, text=True, check=False)
    if proc.returncode != 0:
        raise BadInputError(f"`{shlex.join(argv)}` failed with exit code {proc.returncode}")
    print_summary(
        f"submitted {recipe} on {nodes} x {gpus_per_node} via {scheduler.value}: {shlex.join(argv)}"
    )
