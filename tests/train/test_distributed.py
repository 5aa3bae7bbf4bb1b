"""DeepSpeed/accelerate glue: shipped configs and the world-size guard."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
import yaml

from llm.errors import BadInputError
from llm.train.distributed import (
    TEARDOWN_ENV,
    check_world_size,
    is_cpu_run,
    offloads,
    read_accelerate_config,
    zero_stage,
)

REPO = Path(__file__).resolve().parents[2]
DEEPSPEED = sorted((REPO / "recipes/deepspeed").glob("*.json"))
ACCELERATE = sorted((REPO / "recipes/accelerate").glob("*.yaml"))
# keys the HF Trainer / accelerate know how to fill when they say "auto"
FILLABLE_AUTO = {
    "train_micro_batch_size_per_gpu",
    "gradient_accumulation_steps",
    "train_batch_size",
    "gradient_clipping",
    "bf16.enabled",
    "fp16.enabled",
    "zero_optimization.reduce_bucket_size",
    "zero_optimization.stage3_prefetch_bucket_size",
    "zero_optimization.stage3_param_persistence_threshold",
}


def _auto_keys(node: Any, where: str = "") -> set[str]:
    if isinstance(node, dict):
        return set().union(*(_auto_keys(v, f"{where}{k}.") for k, v in node.items()))
    return {where.rstrip(".")} if node == "auto" else set()


# ---------------------------------------------------------------- shipped configs


def test_the_three_deepspeed_configs_ship() -> None:
    assert [p.name for p in DEEPSPEED] == ["zero2.json", "zero3-offload.json", "zero3.json"]


@pytest.mark.parametrize("path", DEEPSPEED, ids=lambda p: p.name)
def test_deepspeed_config_has_no_optimizer_and_only_fillable_autos(path: Path) -> None:
    config = json.loads(path.read_text())
    assert "optimizer" not in config  # torch AdamW; nothing to compile
    assert "scheduler" not in config
    assert config["bf16"] == {"enabled": "auto"}
    assert config["fp16"]["enabled"] == "auto"
    autos = _auto_keys(config)
    assert autos <= FILLABLE_AUTO, autos - FILLABLE_AUTO
    assert {"train_micro_batch_size_per_gpu", "gradient_accumulation_steps"} <= autos
    assert "gradient_clipping" in autos


def test_zero_stages_and_offload() -> None:
    configs = {p.name: json.loads(p.read_text()) for p in DEEPSPEED}
    assert zero_stage(configs["zero2.json"]) == 2
    assert zero_stage(configs["zero3.json"]) == 3
    assert zero_stage(configs["zero3-offload.json"]) == 3
    for name in ("zero3.json", "zero3-offload.json"):
        assert configs[name]["zero_optimization"]["stage3_gather_16bit_weights_on_model_save"]
    assert offloads(configs["zero3.json"]) == (False, False)
    assert offloads(configs["zero3-offload.json"]) == (True, True)
    # torch AdamW beside offload needs DeepSpeed's CPU-Adam check turned off
    assert configs["zero3-offload.json"]["zero_force_ds_cpu_optimizer"] is False


@pytest.mark.parametrize("path", ACCELERATE, ids=lambda p: p.name)
def test_accelerate_config_parses_and_names_a_shipped_deepspeed_file(path: Path) -> None:
    from accelerate.commands.config.config_args import load_config_from_file

    parsed = load_config_from_file(str(path))  # accelerate's own reader accepts it
    assert str(parsed.distributed_type) == "DistributedType.DEEPSPEED"
    launch = read_accelerate_config(path, base_dir=REPO)
    assert launch.deepspeed_config_file is not None and launch.deepspeed_config_file.is_file()
    assert "mixed_precision" not in yaml.safe_load(path.read_text())  # the recipe decides
    if path.name.startswith("cpu-"):
        assert (launch.num_processes, launch.use_cpu) == (2, True)
    if path.name.startswith("gpu-8"):
        assert (launch.num_processes, launch.use_cpu) == (8, False)


def test_multinode_config_documents_its_launch() -> None:
    path = REPO / "recipes/accelerate/multinode-zero3.yaml"
    text = path.read_text()
    for word in ("machine_rank", "main_process_ip", "hostfile", "Kubernetes"):
        assert word in text
    launch = read_accelerate_config(path, base_dir=REPO)
    assert (launch.num_machines, launch.num_processes, launch.processes_per_machine) == (2, 16, 8)


# ---------------------------------------------------------------- world-size guard


@pytest.fixture
def clean_launch_env(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for key in ("WORLD_SIZE", "MASTER_PORT", "MASTER_ADDR", "ACCELERATE_MIXED_PRECISION"):
        monkeypatch.delenv(key, raising=False)
    return monkeypatch


def test_single_process_when_one_was_expected(clean_launch_env: pytest.MonkeyPatch) -> None:
    assert check_world_size(None) == 1
    assert check_world_size(1) == 1


def test_guard_refuses_one_process_when_the_config_asked_for_two(
    clean_launch_env: pytest.MonkeyPatch,
) -> None:
    with pytest.raises(BadInputError, match=r"asked for 2 processes but started only 1") as info:
        check_world_size(2)
    assert "--use_deepspeed" in str(info.value) and "--multi_gpu" in str(info.value)


def test_guard_spots_accelerates_simple_launcher_trap_without_a_recipe(
    clean_launch_env: pytest.MonkeyPatch,
) -> None:
    # what `accelerate launch --num_processes 2 x.py` (no --use_deepspeed) leaves in the env
    clean_launch_env.setenv("ACCELERATE_MIXED_PRECISION", "no")
    clean_launch_env.setenv("MASTER_ADDR", "127.0.0.1")
    clean_launch_env.setenv("MASTER_PORT", "29500")
    with pytest.raises(BadInputError, match="started only 1"):
        check_world_size(None)


def test_guard_accepts_the_expected_world_and_refuses_another(
    clean_launch_env: pytest.MonkeyPatch,
) -> None:
    clean_launch_env.setenv("WORLD_SIZE", "2")
    assert check_world_size(2) == 2
    with pytest.raises(BadInputError, match="asks for 8"):
        check_world_size(8)


def test_is_cpu_run_matches_the_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.delenv("ACCELERATE_USE_CPU", raising=False)
    assert is_cpu_run() == (not torch.cuda.is_available())
    monkeypatch.setenv("ACCELERATE_USE_CPU", "True")
    assert is_cpu_run()


# ---------------------------------------------------------------- real launches


PROBE = textwrap.dedent(
    """
    import os, sys
    from llm.train.distributed import check_world_size, init_distributed_state
    expected = int(sys.argv[1]) if len(sys.argv) > 1 else None
    init_distributed_state()
    from accelerate import PartialState
    world = check_world_size(expected)
    state = PartialState()
    print(f"PROBE rank={state.process_index} world={world} state={state.num_processes} "
          f"type={state.distributed_type}", flush=True)
    """
)


def _accelerate(args: list[str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    probe = tmp_path / "probe.py"
    probe.write_text(PROBE)
    env = dict(os.environ)
    env["TORCH_EXTENSIONS_DIR"] = str(REPO / "build/torch_extensions")
    accelerate = Path(sys.executable).with_name("accelerate")
    return subprocess.run(
        [
            str(accelerate),
            "launch",
            *args,
            str(probe),
            *([] if "--num_processes" in args else ["2"]),
        ],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=400,
    )


@pytest.mark.slow
def test_cpu_zero2_config_really_starts_two_deepspeed_processes(tmp_path: Path) -> None:
    done = _accelerate(["--config_file", "recipes/accelerate/cpu-zero2.yaml"], tmp_path)
    # two processes share stdout, so their lines may run together
    lines = sorted(
        re.findall(r"PROBE rank=\d+ world=\d+ state=\d+ type=\S+?DEEPSPEED", done.stdout)
    )
    assert done.returncode == 0, done.stderr[-3000:]
    assert lines == [
        "PROBE rank=0 world=2 state=2 type=DistributedType.DEEPSPEED",
        "PROBE rank=1 world=2 state=2 type=DistributedType.DEEPSPEED",
    ]


@pytest.mark.slow
def test_guard_stops_the_silent_single_process_launch(tmp_path: Path) -> None:
    done = _accelerate(["--num_processes", "2"], tmp_path)
    assert done.returncode != 0
    assert "started only 1" in done.stderr
    assert "PROBE" not in done.stdout


_END_RANK_SCRIPT = """
import atexit, logging, sys
from llm.train.distributed import end_rank_process
logging.basicConfig(level=logging.INFO, stream=sys.stderr)
atexit.register(lambda: print("teardown ran"))
sys.stdout.write("buffered line")  # no newline: flushed only if end_rank_process flushes
logging.getLogger("x").info("logged line")
end_rank_process()
print("returned")
"""


@pytest.mark.parametrize(
    ("world_size", "teardown"), [("2", None), (None, None), ("2", "python"), ("2", "exit")]
)
def test_end_rank_process_flushes_and_skips_teardown_only_under_a_launcher(
    world_size: str | None, teardown: str | None
) -> None:
    env = {k: v for k, v in os.environ.items() if k not in {"WORLD_SIZE", TEARDOWN_ENV}}
    if world_size is not None:
        env["WORLD_SIZE"] = world_size
    if teardown is not None:
        env[TEARDOWN_ENV] = teardown  # "python": the interpreter's teardown, to study the abort
    proc = subprocess.run(
        [sys.executable, "-c", _END_RANK_SCRIPT], env=env, capture_output=True, text=True
    )
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("buffered line") and "logged line" in proc.stderr
    ended = world_size is not None and teardown != "python"
    assert ("returned" in proc.stdout) != ended
    assert ("teardown ran" in proc.stdout) != ended
