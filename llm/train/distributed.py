"""DeepSpeed and accelerate glue: launch configs and the world-size guard.

Two things go wrong silently when training is launched by hand, and this
module turns each into a clear error:

* ``accelerate launch --num_processes 2 script`` without ``--multi_gpu`` or
  ``--use_deepspeed`` (or a ``--config_file`` whose ``distributed_type`` says
  so) starts ONE process. :func:`check_world_size` catches it.
* On a CPU machine accelerate's state, created without a backend, reports one
  process while DeepSpeed's gloo group has two: every rank believes it is rank
  0 and DeepSpeed's batch-size assertion fails. :func:`init_distributed_state`
  creates the state with ``backend="gloo"`` first; :func:`check_world_size`
  names the mismatch if it happens anyway.

torch and accelerate are imported inside the functions that need them, so
loading a recipe stays cheap.
"""

from __future__ import annotations

import logging
import os
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from llm.errors import BadInputError
from llm.files import read_json_object

log = logging.getLogger(__name__)

# accelerate `distributed_type` values that start one process per rank.
MULTI_PROCESS_TYPES = frozenset(
    {"DEEPSPEED", "MULTI_GPU", "MULTI_CPU", "MULTI_NPU", "MULTI_XPU", "MULTI_HPU", "FSDP"}
)


@dataclass(frozen=True)
class AccelerateLaunch:
    """What an accelerate config file asks ``accelerate launch`` to start.

    Args:
        path: the config file.
        distributed_type: accelerate's ``distributed_type`` (``DEEPSPEED``, ``MULTI_GPU``, ``NO``).
        num_processes: processes over ALL machines (accelerate's meaning), i.e. the world size.
        num_machines: nodes.
        use_cpu: the config's ``use_cpu``.
        deepspeed_config_file: the DeepSpeed JSON it names, resolved like recipe paths, or None.
    """

    path: Path
    distributed_type: str
    num_processes: int
    num_machines: int
    use_cpu: bool
    deepspeed_config_file: Path | None

    @property
    def processes_per_machine(self) -> int:
        """GPUs (or CPU processes) per node."""
        return max(1, self.num_processes // max(1, self.num_machines))


def read_json_config(path: Path) -> dict[str, Any]:
    """Read a DeepSpeed JSON config.

    Raises:
        BadInputError: the file is missing, is not JSON, or is not a JSON object.
    """
    return read_json_object(path, what="DeepSpeed config")


def zero_stage(ds_config: dict[str, Any]) -> int:
    """The ZeRO stage of a DeepSpeed config (0 when it has no ``zero_optimization``)."""
    stage = ds_config.get("zero_optimization", {}).get("stage", 0)
    return int(stage)


def offloads(ds_config: dict[str, Any]) -> tuple[bool, bool]:
    """Whether the config offloads (optimizer states, parameters) to CPU or NVMe."""
    zero = ds_config.get("zero_optimization", {})

    def _on(key: str) -> bool:
        device = (zero.get(key) or {}).get("device", "none")
        return str(device) in {"cpu", "nvme"}

    return _on("offload_optimizer"), _on("offload_param")


def read_accelerate_config(path: Path, base_dir: Path | None = None) -> AccelerateLaunch:
    """Read the parts of an accelerate config file that decide the world size.

    Args:
        path: the YAML file written for ``accelerate launch --config_file``.
        base_dir: folder relative ``deepspeed_config_file`` paths resolve against
            (accelerate resolves them against the working directory; so does this,
            by default).

    Raises:
        BadInputError: the file is missing or is not a mapping with valid counts.
    """
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BadInputError(f"{path}: accelerate config not found") from None
    except yaml.YAMLError as exc:
        raise BadInputError(f"{path}: not valid YAML: {exc}") from None
    if not isinstance(data, dict):
        raise BadInputError(f"{path}: an accelerate config must be a YAML mapping")
    try:
        num_processes = int(data.get("num_processes", 1))
        num_machines = int(data.get("num_machines", 1))
    except (TypeError, ValueError):
        raise BadInputError(f"{path}: num_processes and num_machines must be integers") from None
    if num_processes < 1 or num_machines < 1:
        raise BadInputError(f"{path}: num_processes and num_machines must be at least 1")
    ds_file = (data.get("deepspeed_config") or {}).get("deepspeed_config_file")
    ds_path: Path | None = None
    if ds_file:
        ds_path = Path(ds_file)
        if not ds_path.is_absolute():
            ds_path = (base_dir or Path.cwd()) / ds_path
    return AccelerateLaunch(
        path=path,
        distributed_type=str(data.get("distributed_type", "NO")).upper(),
        num_processes=num_processes,
        num_machines=num_machines,
        use_cpu=bool(data.get("use_cpu", False)),
        deepspeed_config_file=ds_path,
    )


def is_cpu_run() -> bool:
    """True when this process trains on CPU: no CUDA device, or accelerate was told ``--cpu``."""
    if os.environ.get("ACCELERATE_USE_CPU", "").lower() in {"1", "true", "yes"}:
        return True
    import torch

    return not torch.cuda.is_available()


def init_distributed_state() -> None:
    """Create accelerate's process state so that it sees every process, CPU runs included.

    Call this first thing in the training process, before building
    ``TrainingArguments`` or an ``Accelerator`` (and pass
    ``accelerator_config={"use_configured_state": True}`` to ``TrainingArguments``
    so the HF Trainer keeps it). On CPU, accelerate only learns the world size
    when it is given ``backend="gloo"``; without it, every rank reports
    ``process_index=0, num_processes=1`` while DeepSpeed's group has them all.
    Does nothing in a single process or when the state already exists.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    from accelerate import PartialState

    if PartialState._shared_state:
        return
    if is_cpu_run():
        PartialState(backend="gloo")
    else:
        PartialState()


# "python" lets a rank of a multi-process run go through interpreter teardown instead of
# os._exit (end_rank_process); for studying the teardown abort, not for real runs.
TEARDOWN_ENV = "CLINICAL_LLM_TEARDOWN"


def end_rank_process() -> None:
    """End a rank of a finished multi-process run at once, skipping interpreter teardown.

    Without this, a rank sometimes aborted after the run had finished and saved
    ("terminate called without an active exception", SIGABRT) and the launcher
    reported the whole run as failed. Every rank has passed the trainer's final
    barrier and written what it writes, so after flushing the Python-level output
    this ends the process with status 0 and no teardown. Does nothing in a single
    process, where exit is clean, or when ``CLINICAL_LLM_TEARDOWN=python`` asks for
    the interpreter's own teardown (to study the abort: scripts/repro_teardown.py).

    The abort's cause, shown with two plain gloo ranks and no DeepSpeed
    (docs/training.md "Process teardown"): a gloo worker thread (``pt_gloo_runloop``)
    drops its reference to a collective after the caller's ``wait()`` has returned.
    When that is the last reference, the work's tensors release their Python
    objects, which takes the GIL. If the main thread has begun interpreter
    finalization by then, CPython ends the worker with ``pthread_exit``; the forced
    unwind meets the ``noexcept`` destructor of the work and calls ``std::terminate``.
    Core dump frames: ``runLoop`` → ``~AsyncAllreduceWork`` → ``~AsyncWork`` →
    ``TensorImpl::decref_pyobject`` → ``gil_scoped_acquire`` → ``take_gil`` →
    ``PyThread_exit_thread`` → ``pthread_exit`` → ``_Unwind_ForcedUnwind`` →
    ``__gxx_personality_v0`` → ``std::terminate`` → ``abort``. In the 2-process
    ZeRO-3 run the same path is live: DeepSpeed keeps both gloo groups referenced,
    so they are never destroyed (their destructors, which would join the workers,
    never run) and their six threads are still there at ``exit()``; and the workers
    free about a third of the finished collectives themselves, with a thousand or so
    Python decrefs per rank in a 2-step run. The abort itself was not caught in that
    run (see the docs for the counts). ``os._exit`` avoids it because the process
    never enters finalization: the workers are killed where they stand.
    """
    if int(os.environ.get("WORLD_SIZE", "1")) <= 1:
        return
    if os.environ.get(TEARDOWN_ENV, "exit") == "python":
        return  # the interpreter's own teardown, to study the abort (scripts/repro_teardown.py)
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        stream.flush()
    os._exit(0)


def _launch_trap_message(expected: int | None) -> str:
    asked = f"{expected} processes" if expected else "several processes"
    return (
        f"accelerate was asked for {asked} but started only 1: `accelerate launch "
        "--num_processes N` without `--use_deepspeed` (or `--multi_gpu`) runs a single "
        "process. Add `--use_deepspeed --deepspeed_config_file recipes/deepspeed/zero2.json` "
        "(or `--multi_gpu`), or launch with the recipe's accelerate config: "
        "`accelerate launch --config_file recipes/accelerate/cpu-zero2.yaml -m llm.train RECIPE`."
    )


def check_world_size(expected: int | None) -> int:
    """Log the world size of this run and refuse the silent single-process trap.

    Args:
        expected: processes the launch config asked for (the recipe's accelerate
            config ``num_processes``), or None when unknown.

    Returns:
        The world size this process belongs to.

    Raises:
        BadInputError: ``expected > 1`` but only one process runs (or accelerate's
            simple launcher was asked for several; it sets ``MASTER_PORT`` without
            ``WORLD_SIZE``); the world size differs from ``expected``; or
            accelerate's state counts fewer processes than torch.distributed.
    """
    env_world = os.environ.get("WORLD_SIZE")
    world = int(env_world) if env_world else 1
    dist_world: int | None = None
    import torch.distributed as dist

    if dist.is_available() and dist.is_initialized():
        dist_world = dist.get_world_size()
        world = dist_world
    log.info(
        "world size %d (WORLD_SIZE=%s, torch.distributed=%s, expected=%s)",
        world,
        env_world,
        dist_world,
        expected,
    )
    # accelerate's simple launcher sets MASTER_ADDR/PORT only when asked for more than
    # one process, and never WORLD_SIZE: that combination is the trap itself.
    launched_by_accelerate = "ACCELERATE_MIXED_PRECISION" in os.environ
    trapped = launched_by_accelerate and env_world is None and "MASTER_PORT" in os.environ
    if world == 1 and ((expected is not None and expected > 1) or trapped):
        raise BadInputError(_launch_trap_message(expected))
    if expected is not None and world != expected:
        raise BadInputError(
            f"{world} processes are running but the accelerate config asks for {expected}: "
            "launch with that config (`accelerate launch --config_file …`) or change its "
            "num_processes"
        )
    from accelerate import PartialState

    state_world = PartialState._shared_state.get("num_processes")
    if dist_world is not None and state_world is not None and state_world != dist_world:
        raise BadInputError(
            f"accelerate counts {state_world} process(es) but torch.distributed has {dist_world}: "
            "on CPU, call llm.train.distributed.init_distributed_state() (accelerate state "
            "with backend='gloo') before building the Trainer/Accelerator"
        )
    return world
