"""Per-record work on Ray Data: the same function as in one process, spread over actors.

``data deid`` and ``data build`` read and validate their records file in the driver (the
process that runs the command), exactly as their single-process path does, so
``read = used + rejected``, the rejects file and a bad line's error are the same. The
valid lines then become a Ray Dataset (``ray.data.from_items``), ``map_batches`` hands
them to a pool of actors, each of which builds its worker once when it starts (the
de-identifier's Presidio and spaCy pipelines, the task renderers) and keeps it, and the
results come back in input order (``preserve_order``): the driver writes the same bytes
as a single-process run.

No exception ever leaves an actor: Ray logs a failed task with its arguments, which here
are patients' records. A line that fails comes back as a pickled exception in the result
column and is raised again by the driver, as the single-process path would raise it. A
worker that cannot be built (a model that does not load) fails every line it is given
the same way, instead of killing the actor.

Actors read and write files under the same paths as the driver (assets beside IN, outputs
beside OUT), so on a cluster those folders must be on storage every node mounts at the
same place.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np

from llm.errors import BadInputError
from llm.ray_cluster import ray_session

# Records per batch handed to an actor, and per block of the dataset: small enough that
# two actors share a small cohort, large enough that Ray's per-batch cost stays small
# beside ~50 ms of de-identification per patient.
BATCH_RECORDS = 4
MAX_BLOCKS = 2000

LineWorker = Callable[[str], Any]
"""What an actor holds: one record line (JSON) in, one picklable result out."""


class RecordActor:
    """One Ray actor: builds its worker once, then applies it to batches of lines.

    Args:
        make_worker: builds the worker from ``config``: a module-level function (Ray
            pickles it by name), e.g. ``llm.data.deid.records.line_worker``.
        config: the run's settings (a key in it must stay out of its ``repr``).
    """

    def __init__(self, make_worker: Callable[[Any], LineWorker], config: Any) -> None:
        self.worker: LineWorker | None = None
        self.failed: bytes | None = None
        try:
            self.worker = make_worker(config)
        except Exception as exc:  # an actor that died here would take Ray's traceback along
            self.failed = _pickled_error(exc)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Apply the worker to each line of ``batch["line"]``.

        Returns:
            ``ok`` (False where the line failed) and ``result``: the pickled result, or
            the pickled exception.
        """
        if self.worker is None:  # its worker could not be built: every line fails with that
            failed = [self.failed] * len(batch["line"])
            return {
                "ok": np.zeros(len(failed), dtype=bool),
                "result": np.array(failed, dtype=object),
            }
        ok, results = [], []
        for line in batch["line"]:
            try:
                result = self.worker(str(line))
                ok.append(True)
                results.append(pickle.dumps(result))
            except Exception as exc:  # raised again by the driver, never logged by Ray
                ok.append(False)
                results.append(_pickled_error(exc))
        return {"ok": np.array(ok, dtype=bool), "result": np.array(results, dtype=object)}


def _pickled_error(exc: Exception) -> bytes:
    """The exception, pickled so that the driver can raise it again.

    One that does not survive a pickle round trip (an ``__init__`` taking other
    arguments than its ``args``) travels as a :class:`BadInputError` with the same message
    where it is one (exit code 2, as in one process), else as a ``RuntimeError`` naming
    its type.
    """
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:
        if isinstance(exc, BadInputError):
            return pickle.dumps(BadInputError(str(exc)))
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


def map_lines_on_ray(
    lines: list[str],
    make_worker: Callable[[Any], LineWorker],
    config: Any,
    *,
    workers: int,
    address: str,
    batch_records: int = BATCH_RECORDS,
    cpus_per_worker: int = 1,
    gpus_per_worker: float = 0,
) -> Iterator[Any]:
    """Apply a per-line worker to validated record lines on Ray; yield results in order.

    Args:
        lines: one JSON record a line, already validated by the driver.
        make_worker: builds each actor's worker from ``config`` (once per actor).
        config: the run's settings, sent to every actor.
        workers: actors in the pool; a ``local`` Ray gets ``workers * cpus_per_worker`` CPUs.
        address: ``local``, ``auto``, ``ray://HOST:PORT`` (:mod:`llm.ray_cluster`).
        batch_records: lines handed to an actor at a time (also the lines of a block).
        cpus_per_worker: CPUs Ray reserves for each actor (Ray sets the actor's
            ``OMP_NUM_THREADS`` to it).
        gpus_per_worker: GPUs Ray reserves for each actor (0: it sees none, as Ray hides
            the GPUs from an actor that asked for none).

    Raises:
        BadInputError: a bad address, or Ray not installed.
        Exception: whatever the worker raised on a line (as in one process).
    """
    with ray_session(address, num_cpus=workers * cpus_per_worker) as ray:
        if not lines:
            return
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # output order is input order
        context.enable_progress_bars = False  # the CLI draws its own
        blocks = min(MAX_BLOCKS, max(1, math.ceil(len(lines) / batch_records)))
        dataset = ray.data.from_items(
            [{"line": line} for line in lines], override_num_blocks=blocks
        ).map_batches(
            RecordActor,
            fn_constructor_kwargs={"make_worker": make_worker, "config": config},
            batch_size=batch_records,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=cpus_per_worker,
            **({"num_gpus": gpus_per_worker} if gpus_per_worker else {}),
        )
        for row in dataset.iter_rows():
            payload = pickle.loads(row["result"])
            if not row["ok"]:
                raise payload
            yield payload
