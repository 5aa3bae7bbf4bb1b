"""Multi-node launches (issue #27 §3): dry runs for Slurm and Kubernetes, the sbatch script run
under stand-ins for ``srun``/``scontrol``/``accelerate``, the shipped Job manifest, and (slow)
two "nodes" on this machine over loopback with the real launcher."""

from __future__ import annotations

import json
import math
import os
import shlex
import socket
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm.cli import main
from llm.train.cluster import K8S_MANIFEST, SBATCH_SCRIPT, plan_launch
from tests.train.fixtures import (
    ACCELERATE,
    LAUNCH_TIMEOUT_S,
    REPO,
    RESUME_STEPS,
    TrainingAssets,
    logged_losses,
    read_manifest,
    training_assets,  # noqa: F401  (fixture)
    training_env,
    zero2_lora_overrides,
    zero2_lora_run,  # noqa: F401  (fixture)
)

RECIPE = "recipes/llama-3.1-8b-full-zero3.yaml"
MULTINODE = "recipes/accelerate/multinode-zero3.yaml"
SHAPE = ["--nodes", "2", "--gpus-per-node", "8"]


def _dry_run(capsys: pytest.CaptureFixture[str], *args: str) -> str:
    code = main(["launch", RECIPE, *SHAPE, "--accelerate-config", MULTINODE, "--dry-run", *args])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    return captured.out


def _node_commands(text: str) -> list[list[str]]:
    return [shlex.split(line.removeprefix("#   ")) for line in text.splitlines()
            if line.removeprefix("#   ").startswith("accelerate launch")]  # fmt: skip


def test_slurm_dry_run_prints_one_command_per_node(capsys: pytest.CaptureFixture[str]) -> None:
    out = _dry_run(capsys, "--scheduler", "slurm", "--set", "training.learning_rate=1e-5")
    assert "# submit: sbatch --nodes=2 --gpus-per-node=8 " in out and SBATCH_SCRIPT in out
    assert 'MAIN_PROCESS_IP=$(scontrol show hostnames "$SLURM_JOB_NODELIST" | head -n 1)' in out
    commands = _node_commands(out)
    assert len(commands) == 2
    for rank, argv in enumerate(commands):
        flags = dict(zip(argv[2:16:2], argv[3:16:2], strict=True))
        assert flags == {
            "--config_file": MULTINODE,
            "--num_machines": "2",
            "--num_processes": "16",  # accelerate counts processes over all machines
            "--machine_rank": str(rank),
            "--main_process_ip": "$MAIN_PROCESS_IP",
            "--main_process_port": "29500",
            "--deepspeed_multinode_launcher": "standard",  # torchrun per node, no SSH
        }
        # the recipe's own config asks for 8 processes: every rank is told the one it runs
        assert argv[16:] == ["-m", "llm.train", RECIPE, "--set", "training.learning_rate=1e-5",
                             "--set", f"launch.accelerate_config={MULTINODE}"]  # fmt: skip


def _stub(folder: Path, name: str, body: str) -> None:
    path = folder / name
    path.write_text("#!/bin/bash\n" + body)
    path.chmod(0o755)


def test_the_sbatch_script_runs_the_dry_runs_commands(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    expected = _node_commands(
        _dry_run(
            capsys,
            "--scheduler",
            "slurm",
            "--main-process-ip",
            "gpu-a17",
            "--set",
            "training.seed=3",
        )
    )
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    _stub(
        bin_dir,
        "scontrol",
        'test "$*" = "show hostnames gpu-a[17-18]" && printf "gpu-a17\\ngpu-a18\\n"\n'
        # more than a pipe buffer after the head: `| head -n 1` under pipefail
        # would kill scontrol with SIGPIPE (exit 141), as CI once saw by chance
        "seq -f 'gpu-b%g' 20000\n",
    )
    # srun: one task per node, each with its SLURM_NODEID, as Slurm starts them
    srun = (
        "n=1\nwhile [[ $1 == --* ]]; do [[ $1 == --nodes=* ]] && n=${1#--nodes=}; shift; done\n"
        'for ((i = 0; i < n; i++)); do SLURM_NODEID=$i "$@" || exit $?; done\n'
    )
    _stub(bin_dir, "srun", srun)
    _stub(bin_dir, "accelerate", 'printf "%s\\x1f" accelerate "$@"; printf "\\n"\n')
    env = {
        "PATH": f"{bin_dir}:/usr/bin:/bin",
        "SLURM_JOB_NODELIST": "gpu-a[17-18]",
        "SLURM_JOB_NUM_NODES": "2",
        "SLURM_GPUS_ON_NODE": "8",
        "ACCELERATE_CONFIG": MULTINODE,
        "VENV": str(tmp_path / "no-venv"),
    }
    proc = subprocess.run(
        ["bash", SBATCH_SCRIPT, RECIPE, "--set", "training.seed=3",
         "--set", f"launch.accelerate_config={MULTINODE}"],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=30,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    ran = [line.rstrip("\x1f").split("\x1f") for line in proc.stdout.splitlines()]
    assert ran == expected
    assert "2 nodes x 8 processes, head gpu-a17:29500" in proc.stderr
    outside = subprocess.run(["bash", SBATCH_SCRIPT, RECIPE], cwd=REPO, env={"PATH": env["PATH"]},
                             capture_output=True, text=True, timeout=30)  # fmt: skip
    assert outside.returncode != 0 and "not inside a Slurm allocation" in outside.stderr


def test_k8s_dry_run_is_the_shipped_manifest(capsys: pytest.CaptureFixture[str]) -> None:
    out = _dry_run(capsys, "--scheduler", "k8s")
    head = "clinical-llm-train-0.clinical-llm-train"
    commands = _node_commands(out)
    assert [c[c.index("--machine_rank") + 1] for c in commands] == ["0", "1"]
    assert all(c[c.index("--main_process_ip") + 1] == head for c in commands)
    rendered = [d for d in yaml.safe_load_all(out) if d is not None]
    shipped = [d for d in yaml.safe_load_all((REPO / K8S_MANIFEST).read_text()) if d is not None]
    assert rendered == shipped, f"{K8S_MANIFEST} differs from the dry run: render it again"
    service, job = shipped
    assert service["kind"] == "Service" and service["spec"]["clusterIP"] == "None"
    assert job["kind"] == "Job" and job["spec"]["completionMode"] == "Indexed"
    assert job["spec"]["completions"] == job["spec"]["parallelism"] == 2
    pod = job["spec"]["template"]["spec"]
    # pod <job>-0 is <job>-0.<service>: the Service must select the pods and be the subdomain
    assert pod["subdomain"] == service["metadata"]["name"] == job["metadata"]["name"]
    assert service["spec"]["selector"] == {"job-name": job["metadata"]["name"]}
    (container,) = pod["containers"]
    assert container["command"][container["command"].index("--machine_rank") + 1] == (
        "$(JOB_COMPLETION_INDEX)"
    )
    index_env = {e["name"]: e for e in container["env"]}["JOB_COMPLETION_INDEX"]
    path = index_env["valueFrom"]["fieldRef"]["fieldPath"]
    assert path == "metadata.annotations['batch.kubernetes.io/job-completion-index']"
    assert container["resources"]["limits"]["nvidia.com/gpu"] == 8


def test_shapes_that_the_world_size_guard_would_refuse_are_refused_first(
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["launch", RECIPE, "--nodes", "3", "--gpus-per-node", "8", "--scheduler", "slurm"]
    assert main([*argv, "--accelerate-config", MULTINODE, "--dry-run"]) == 2
    err = capsys.readouterr().err
    assert "3 nodes x 8 GPUs = 24 processes" in err and "num_processes: 16" in err
    assert main([*argv, "--accelerate-config", "recipes/accelerate/nowhere.yaml", "--dry-run"]) == 2
    assert "launch.accelerate_config: file not found" in capsys.readouterr().err
    with pytest.raises(Exception, match=r"launch\.accelerate_config is null"):
        plan_launch(RECIPE, nodes=2, gpus_per_node=1, accelerate_config=None,
                    recipe_config=None, main_process_ip="h")  # fmt: skip


def test_submitting_without_the_scheduler_tool_is_a_clear_error(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    argv = ["launch", RECIPE, *SHAPE, "--accelerate-config", MULTINODE, "--scheduler", "slurm"]
    assert main(argv) == 2
    assert "sbatch is not on PATH" in capsys.readouterr().err


# ---------------------------------------------------------------- two nodes over loopback


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.mark.slow
def test_two_nodes_over_loopback_match_a_two_process_run(
    zero2_lora_run: Path,  # noqa: F811
    training_assets: TrainingAssets,  # noqa: F811
    tmp_path: Path,
) -> None:
    """Two `accelerate launch` processes, machine ranks 0 and 1, one process each, ZeRO-2.

    The commands are the ones the launch plan prints; the reference is the session's
    single-node 2-process run of the same recipe and overrides.
    """
    out = tmp_path / "two-nodes"
    plan = plan_launch(
        "recipes/tiny-lora-cpu.yaml",
        nodes=2,
        gpus_per_node=1,
        accelerate_config="recipes/accelerate/cpu-zero2.yaml",
        recipe_config=REPO / "recipes/accelerate/cpu-zero2.yaml",
        main_process_ip="127.0.0.1",
        main_process_port=_free_port(),
        overrides=tuple(zero2_lora_overrides(training_assets, out)),
    )
    logs = [tmp_path / f"node{rank}.log" for rank in (0, 1)]
    procs: list[subprocess.Popen[Any]] = []
    for rank, log in enumerate(logs):
        with log.open("w") as fh:
            procs.append(subprocess.Popen(plan.node_argv(rank, accelerate=str(ACCELERATE)),
                                          cwd=REPO, env=training_env(), stdout=fh,
                                          stderr=subprocess.STDOUT))  # fmt: skip
    try:
        codes = [p.wait(timeout=LAUNCH_TIMEOUT_S) for p in procs]
    finally:
        for p in procs:
            if p.poll() is None:
                os.kill(p.pid, 9)
    assert codes == [0, 0], "\n".join(log.read_text()[-3000:] for log in logs)
    # node 1's one process ran as rank 1 of the world of 2: it tokenized its data and
    # wrote its own ZeRO-2 optimizer partition, which rank 0's completion marker lists
    assert "tokenize readmission/train" in logs[1].read_text()
    marker = json.loads((out / "checkpoint-2" / "checkpoint_complete.json").read_text())
    shards = [name for name in marker["files"] if "optim_states" in name]
    assert len(shards) == 2 and any("zero_pp_rank_1_" in name for name in shards), shards
    manifest: Any = read_manifest(out)
    assert manifest["world_size"] == 2 and manifest["results"]["global_step"] == RESUME_STEPS
    reference: Any = read_manifest(zero2_lora_run)
    two_nodes, one_node = logged_losses(out), logged_losses(zero2_lora_run)
    assert sorted(two_nodes) == sorted(one_node) == list(range(1, RESUME_STEPS + 1))
    for step, loss in one_node.items():
        assert math.isclose(two_nodes[step], loss, rel_tol=1e-4), (step, two_nodes, one_node)
    final, ref_final = (
        manifest["results"]["final_eval_loss"],
        reference["results"]["final_eval_loss"],
    )
    assert math.isclose(final, ref_final, rel_tol=1e-4)
