"""Multi-node training: each node's ``accelerate launch`` command, for Slurm or Kubernetes.

Every node runs one ``accelerate launch`` (accelerate's ``standard`` multi-node
launcher: torchrun on each node, a static rendezvous at the head node, no SSH
and no hostfile) with the same config, recipe and overrides, differing only in
``--machine_rank``::

    accelerate launch --config_file CFG --num_machines N --num_processes N*G \\
        --machine_rank R --main_process_ip HEAD --main_process_port PORT \\
        --deepspeed_multinode_launcher standard -m llm.train RECIPE [--set k=v ...]

``--num_processes`` counts processes over all machines (accelerate's meaning).
The run's world-size guard (:func:`llm.train.distributed.check_world_size`)
expects the accelerate config's ``num_processes``, so nodes × GPUs per node
must equal it; :func:`plan_launch` refuses other shapes before anything starts.

* Slurm: ``deploy/slurm/train.sbatch`` takes the head node from the allocation
  (``scontrol show hostnames $SLURM_JOB_NODELIST | head -n 1``) and starts one
  task per node with ``srun``; each passes ``--machine_rank $SLURM_NODEID``.
* Kubernetes: an Indexed Job (one pod per node) and a headless Service, so pod
  ``<job>-0`` is reachable as ``<job>-0.<job>``; each pod passes
  ``--machine_rank $(JOB_COMPLETION_INDEX)`` (:func:`k8s_manifests`;
  ``deploy/k8s/training/train-job.yaml`` is its rendering with the defaults).
"""

from __future__ import annotations

import shlex
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llm.errors import BadInputError
from llm.train.distributed import read_accelerate_config

Scheduler = Literal["slurm", "k8s"]
SBATCH_SCRIPT = "deploy/slurm/train.sbatch"
K8S_MANIFEST = "deploy/k8s/training/train-job.yaml"
DEFAULT_PORT = 29500
DEFAULT_JOB = "clinical-llm-train"
DEFAULT_IMAGE = "clinical-llm-train:0.1.0"
DEFAULT_CLAIM = "clinical-llm-shared"
SHARED_MOUNT = "/shared"
WORKDIR = f"{SHARED_MOUNT}/clinical-llm"
SLURM_HEAD = "$MAIN_PROCESS_IP"
K8S_RANK = "$(JOB_COMPLETION_INDEX)"
# the Job controller writes the index into this annotation of every pod
INDEX_ANNOTATION = "metadata.annotations['batch.kubernetes.io/job-completion-index']"


@dataclass(frozen=True)
class LaunchPlan:
    """One multi-node launch, checked against its accelerate config.

    Attributes:
        recipe: the recipe YAML, as given (a path every node sees alike).
        accelerate_config: the accelerate config every node passes.
        nodes: machines.
        gpus_per_node: processes per machine.
        main_process_ip: the head node's address (may be a shell variable the
            scheduler fills in).
        main_process_port: a free TCP port on the head node.
        overrides: ``--set`` values for ``llm.train``.
        resume: pass ``--resume`` (continue from the newest complete checkpoint).
    """

    recipe: str
    accelerate_config: str
    nodes: int
    gpus_per_node: int
    main_process_ip: str
    main_process_port: int
    overrides: tuple[str, ...]
    resume: bool = False

    @property
    def num_processes(self) -> int:
        """Processes over all nodes (the world size)."""
        return self.nodes * self.gpus_per_node

    def node_argv(self, rank: int | str, *, accelerate: str = "accelerate") -> list[str]:
        """The command node ``rank`` runs (``rank`` may be a variable the scheduler fills in)."""
        argv = [
            accelerate,
            "launch",
            "--config_file",
            self.accelerate_config,
            "--num_machines",
            str(self.nodes),
            "--num_processes",
            str(self.num_processes),
            "--machine_rank",
            str(rank),
            "--main_process_ip",
            self.main_process_ip,
            "--main_process_port",
            str(self.main_process_port),
            # torchrun on each node; accelerate's default for DeepSpeed over several
            # machines is DeepSpeed's pdsh launcher, which needs SSH and a hostfile
            "--deepspeed_multinode_launcher",
            "standard",
            "-m",
            "llm.train",
            self.recipe,
        ]
        for item in self.overrides:
            argv += ["--set", item]
        return [*argv, "--resume"] if self.resume else argv


def plan_launch(
    recipe: str,
    *,
    nodes: int,
    gpus_per_node: int,
    accelerate_config: str | None,
    recipe_config: Path | None,
    main_process_ip: str,
    main_process_port: int = DEFAULT_PORT,
    overrides: tuple[str, ...] = (),
    resume: bool = False,
) -> LaunchPlan:
    """Check a multi-node launch and return its plan.

    Args:
        recipe: recipe path as every node will see it.
        nodes: machines (at least 1).
        gpus_per_node: processes per machine (at least 1).
        accelerate_config: the accelerate config to launch with; None: the recipe's.
        recipe_config: the recipe's ``launch.accelerate_config`` (None when it has none).
        main_process_ip: the head node's address.
        main_process_port: a TCP port on the head node.
        overrides: ``--set`` values passed on to ``llm.train``.
        resume: every node passes ``--resume``.

    Raises:
        BadInputError: no accelerate config, a config that is not DeepSpeed, or
            nodes × GPUs that differ from the config's ``num_processes`` (the world
            size the run's guard expects) -- all problems at once.
    """
    chosen = accelerate_config or (_relative(recipe_config) if recipe_config is not None else None)
    if chosen is None:
        raise BadInputError(
            f"{recipe}: launch.accelerate_config is null and no --accelerate-config was given; "
            "a multi-node run needs a DeepSpeed accelerate config (e.g. "
            "recipes/accelerate/multinode-zero3.yaml)"
        )
    config = read_accelerate_config(Path(chosen))
    problems: list[str] = []
    if nodes < 1 or gpus_per_node < 1:
        problems.append("--nodes and --gpus-per-node must be at least 1")
    if config.distributed_type != "DEEPSPEED":
        problems.append(
            f"{chosen}: distributed_type is {config.distributed_type}; the cluster launch is "
            "for DeepSpeed configs (distributed_type: DEEPSPEED)"
        )
    if nodes * gpus_per_node != config.num_processes:
        problems.append(
            f"{nodes} nodes x {gpus_per_node} GPUs = {nodes * gpus_per_node} processes, but "
            f"{chosen} has num_processes: {config.num_processes}, the world size the run "
            "checks for; use a config with num_processes equal to nodes x GPUs per node "
            "(copy recipes/accelerate/multinode-zero3.yaml and change it), or change the shape"
        )
    if not 1 <= main_process_port <= 65535:
        problems.append(f"--main-process-port {main_process_port}: not a TCP port")
    if problems:
        raise BadInputError("; ".join(problems))
    if recipe_config is None or Path(chosen).resolve() != recipe_config.resolve():
        # every rank checks its world size against the recipe's accelerate config
        overrides = (*overrides, f"launch.accelerate_config={chosen}")
    return LaunchPlan(
        recipe=recipe,
        accelerate_config=chosen,
        nodes=nodes,
        gpus_per_node=gpus_per_node,
        main_process_ip=main_process_ip,
        main_process_port=main_process_port,
        overrides=tuple(overrides),
        resume=resume,
    )


def _relative(path: Path) -> str:
    """``path`` relative to the working directory when inside it (nodes share the checkout)."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def sbatch_argv(plan: LaunchPlan) -> list[str]:
    """The ``sbatch`` command that submits ``plan`` with :data:`SBATCH_SCRIPT`."""
    exports = (
        f"ALL,ACCELERATE_CONFIG={plan.accelerate_config},"
        f"GPUS_PER_NODE={plan.gpus_per_node},MAIN_PROCESS_PORT={plan.main_process_port}"
    )
    argv = [
        "sbatch",
        f"--nodes={plan.nodes}",
        f"--gpus-per-node={plan.gpus_per_node}",
        f"--export={exports}",
        SBATCH_SCRIPT,
        plan.recipe,
    ]
    for item in plan.overrides:
        argv += ["--set", item]
    return [*argv, "--resume"] if plan.resume else argv


def k8s_manifests(
    plan: LaunchPlan,
    *,
    job: str = DEFAULT_JOB,
    image: str = DEFAULT_IMAGE,
    claim: str = DEFAULT_CLAIM,
) -> list[dict[str, Any]]:
    """A headless Service and an Indexed Job that run ``plan``, one pod per node.

    The Service gives pod ``<job>-0`` the name ``<job>-0.<job>`` (the head node);
    the pods mount the PersistentVolumeClaim ``claim`` at :data:`SHARED_MOUNT` for
    the model, datasets and checkpoints (shared storage: see docs/training.md
    "Multi-node"); the working directory is a checkout of this repository there
    (:data:`WORKDIR`), so recipe paths resolve alike on every pod.
    """
    labels = {"app.kubernetes.io/name": job, "app.kubernetes.io/component": "training"}
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": job, "labels": dict(labels)},
        "spec": {
            "clusterIP": "None",
            "selector": {"job-name": job},
            "ports": [{"name": "rendezvous", "port": plan.main_process_port}],
            # ranks resolve the head before it is ready; they must find it anyway
            "publishNotReadyAddresses": True,
        },
    }
    container = {
        "name": "train",
        "image": image,
        # a checkout of the repository on the shared volume: recipe paths resolve here
        "workingDir": WORKDIR,
        "command": plan.node_argv(K8S_RANK),
        "env": [
            {
                "name": "JOB_COMPLETION_INDEX",
                "valueFrom": {"fieldRef": {"fieldPath": INDEX_ANNOTATION}},
            },
            {"name": "HF_HUB_OFFLINE", "value": "1"},
            {"name": "NCCL_SOCKET_IFNAME", "value": "eth0"},
        ],
        "ports": [{"containerPort": plan.main_process_port, "name": "rendezvous"}],
        "resources": {"limits": {"nvidia.com/gpu": plan.gpus_per_node}},
        "volumeMounts": [
            {"name": "shared", "mountPath": SHARED_MOUNT},
            {"name": "dshm", "mountPath": "/dev/shm"},
        ],
        "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True},
    }
    job_manifest = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {"name": job, "labels": dict(labels)},
        "spec": {
            "completionMode": "Indexed",
            "completions": plan.nodes,
            "parallelism": plan.nodes,
            # a lost node fails the whole run; resume it with --resume (docs/training.md)
            "backoffLimit": 0,
            "template": {
                "metadata": {"labels": dict(labels)},
                "spec": {
                    "subdomain": job,
                    "restartPolicy": "Never",
                    "containers": [container],
                    "volumes": [
                        {"name": "shared", "persistentVolumeClaim": {"claimName": claim}},
                        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
                    ],
                },
            },
        },
    }
    return [service, job_manifest]


def k8s_head(job: str = DEFAULT_JOB) -> str:
    """The head pod's address under the headless Service of :func:`k8s_manifests`."""
    return f"{job}-0.{job}"


def render_dry_run(plan: LaunchPlan, scheduler: Scheduler, *, job: str = DEFAULT_JOB) -> str:
    """What a dry run prints first: how to submit, then the exact command of every node.

    Every line is a shell comment or a command; for ``k8s`` all are comments, so
    the manifests printed after them still pipe into ``kubectl apply -f -``.
    """
    lines: list[str] = []
    if scheduler == "slurm":
        lines.append(f"# submit: {shlex.join(sbatch_argv(plan))}")
        if plan.main_process_ip == SLURM_HEAD:
            lines.append(
                "# on the allocation: MAIN_PROCESS_IP=$(scontrol show hostnames "
                '"$SLURM_JOB_NODELIST" | head -n 1)'
            )
        for rank in range(plan.nodes):
            lines.append(f"# node {rank} (SLURM_NODEID={rank}):")
            # the script expands the head node's variable on each node
            command = shlex.join(plan.node_argv(rank))
            lines.append(command.replace(f"'{SLURM_HEAD}'", f'"{SLURM_HEAD}"'))
    else:
        lines.append(
            f"# submit: kubectl apply -f - (the manifests below; {K8S_MANIFEST} "
            "is their rendering with the defaults)"
        )
        for rank in range(plan.nodes):
            lines.append(f"# pod {job}-{rank} (JOB_COMPLETION_INDEX={rank}):")
            lines.append("#   " + shlex.join(plan.node_argv(rank)))
    return "\n".join(lines) + "\n"
