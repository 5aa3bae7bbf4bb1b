"""The export worker: every job that loads model weights runs in a fresh process.

``python -m llm.export.merge_worker JOB.json RESULT.json`` runs one job
(``merge`` an adapter, ``convert`` full weights to another dtype,
``consolidate`` ZeRO shards) and writes its outcome to ``RESULT.json``.
:func:`run_worker` is the parent's side.

Why a separate process: ``TrainingArguments`` with a ZeRO-3 DeepSpeed config
registers that config process-wide (``transformers.integrations.deepspeed``
keeps a reference), and from then on every ``from_pretrained`` in the process
partitions the weights it loads over the (absent) process group. An export
called right after training in the same process, or from a notebook that
trained, would merge an adapter into empty partitions and save garbage. A
fresh interpreter has no such state; the worker also calls
``unset_hf_deepspeed_config()`` itself, and its environment drops the
launcher's variables (``WORLD_SIZE``, ``RANK``, ``ACCELERATE_*``…), so nothing
makes it believe it is one rank of a distributed run. The same isolation
keeps ``TORCH_FORCE_WEIGHTS_ONLY_LOAD=1`` (set for the worker only) from
touching the caller.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

from llm.env import private_env
from llm.errors import BadInputError

log = logging.getLogger(__name__)

WORKER_MODULE = "llm.export.merge_worker"
# Variables a launcher (accelerate, torchrun, deepspeed) sets in its processes.
LAUNCHER_ENV = (
    "WORLD_SIZE",
    "RANK",
    "LOCAL_RANK",
    "LOCAL_WORLD_SIZE",
    "GROUP_RANK",
    "ROLE_RANK",
    "MASTER_ADDR",
    "MASTER_PORT",
    "CROSS_RANK",
    "CROSS_SIZE",
)
LAUNCHER_PREFIXES = ("ACCELERATE_", "TORCHELASTIC_", "DEEPSPEED_")
LOG_TAIL_CHARS = 3000


def worker_env() -> dict[str, str]:
    """The worker's environment: the caller's, minus launcher state, offline, weights-only."""
    caller = {
        k: v
        for k, v in os.environ.items()
        if k not in LAUNCHER_ENV and not k.startswith(LAUNCHER_PREFIXES)
    }
    env = private_env(
        caller,
        # the worker only reads local folders: offline even where the caller allows the hub
        HF_HUB_OFFLINE="1",
        TRANSFORMERS_OFFLINE="1",
        # any torch.load in the worker (DeepSpeed's shard reader) is weights-only
        TORCH_FORCE_WEIGHTS_ONLY_LOAD="1",
        PYTHONUNBUFFERED="1",
    )
    env.pop("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", None)
    return env


def run_worker(job: dict[str, Any], *, timeout_s: float | None = None) -> dict[str, Any]:
    """Run one job in a fresh ``python -m llm.export.merge_worker`` process.

    Args:
        job: ``{"job": "merge"|"convert"|"consolidate", ...}`` (see :func:`run_job`).
        timeout_s: kill the worker after this many seconds (None: no limit).

    Returns:
        The job's result dict.

    Raises:
        BadInputError: the job refused its input (the worker's message).
        RuntimeError: the worker crashed (its output's tail is in the message).
    """
    with tempfile.TemporaryDirectory(prefix="clinical-llm-export-") as tmp:
        job_path, result_path, log_path = (
            Path(tmp) / n for n in ("job.json", "result.json", "log")
        )
        job_path.write_text(json.dumps(job), encoding="utf-8")
        argv = [sys.executable, "-m", WORKER_MODULE, str(job_path), str(result_path)]
        with log_path.open("w") as out:
            proc = subprocess.run(
                argv, env=worker_env(), stdout=out, stderr=subprocess.STDOUT, timeout=timeout_s
            )
        result = (
            json.loads(result_path.read_text(encoding="utf-8")) if result_path.is_file() else None
        )
        if proc.returncode == 0 and result is not None and result.get("ok"):
            return dict(result["result"])
        if result is not None and result.get("bad_input"):
            raise BadInputError(str(result["error"]))
        tail = log_path.read_text(errors="replace")[-LOG_TAIL_CHARS:]
        raise RuntimeError(
            f"export worker ({job['job']}) exited {proc.returncode}: "
            f"{result.get('error') if result else 'no result'}\n{tail}"
        )


def run_job(job: dict[str, Any]) -> dict[str, Any]:
    """Run one job in this process (the worker's body).

    Jobs:
        ``merge``: base, adapter, out, dtype (or null), multimodal.
        ``convert``: model, out, dtype, multimodal.
        ``consolidate``: checkpoint, out, dtype, multimodal.

    Raises:
        BadInputError: an unknown job, or the job refused its input.
    """
    kind = job.get("job")
    out = Path(job["out"])
    if kind == "merge":
        from llm.export.merge import merge_adapter

        return merge_adapter(
            Path(job["base"]),
            Path(job["adapter"]),
            out,
            dtype=job["dtype"],
            multimodal=job["multimodal"],
        )
    if kind == "convert":
        from llm.export.merge import convert_weights

        return convert_weights(
            Path(job["model"]), out, dtype=job["dtype"], multimodal=job["multimodal"]
        )
    if kind == "consolidate":
        from llm.export.merge import TORCH_DTYPES
        from llm.export.zero import consolidate_zero_checkpoint

        result = consolidate_zero_checkpoint(
            Path(job["checkpoint"]),
            out,
            dtype=TORCH_DTYPES[job["dtype"]],
            multimodal=job["multimodal"],
        )
        return {"dtype": job["dtype"], **result}
    raise BadInputError(f"export worker: unknown job {kind!r}")


def main(argv: list[str]) -> int:
    """Worker entry point: ``JOB.json RESULT.json``. Returns the exit code."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    job_path, result_path = Path(argv[0]), Path(argv[1])
    job = json.loads(job_path.read_text(encoding="utf-8"))
    outcome: dict[str, Any]
    try:
        outcome = {"ok": True, "result": run_job(job)}
        code = 0
    except BadInputError as exc:
        outcome = {"ok": False, "bad_input": True, "error": str(exc)}
        code = 2
    except Exception as exc:  # reported to the parent, which raises it there
        log.exception("export worker failed")
        outcome = {"ok": False, "bad_input": False, "error": f"{type(exc).__name__}: {exc}"}
        code = 1
    result_path.write_text(json.dumps(outcome), encoding="utf-8")
    return code


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
