"""De-identification on Ray Data: the same per-patient work, spread over a Ray cluster.

The driver (the process that runs ``data deid``) reads and validates IN as the
single-process path does, so ``read = used + rejected``, the rejects file and a bad
line's error are the same. The valid lines become a Ray Dataset
(``ray.data.from_items``), ``map_batches`` sends them to a pool of actors, each of
which builds one :class:`~llm.data.deid.records.RecordDeidentifier` (Presidio, spaCy,
the DICOM scrubber) when it starts and keeps it, and the results come back in input
order (``preserve_order``), so OUT is byte for byte the single-process output.

No exception ever leaves an actor: Ray logs a failed task with its arguments, which
here are patients' notes. A patient that fails comes back as a pickled exception in
the result column and is raised again by the driver, as the single-process path would
raise it.

Actors read IN's assets and write OUT's under the same paths as the driver, so on a
cluster both folders must be on storage every node mounts at the same place.
"""

from __future__ import annotations

import math
import pickle
from collections.abc import Callable, Iterator
from typing import Any, Protocol

import numpy as np

from llm.data.schema import PatientRecord
from llm.errors import BadInputError
from llm.ray_cluster import ray_session

# Patients per batch handed to an actor, and per block of the dataset: small enough that
# two actors share a small cohort, large enough that Ray's per-batch cost stays small
# beside ~50 ms of analysis per patient.
BATCH_PATIENTS = 4
MAX_BLOCKS = 2000


class PatientWorker(Protocol):
    """What an actor holds: :class:`~llm.data.deid.records.RecordDeidentifier`."""

    def process(self, record: PatientRecord) -> Any: ...


class DeidActor:
    """One Ray actor: builds the de-identifier once, then de-identifies batches of lines.

    Args:
        make_worker: builds the de-identifier from ``config``
            (:class:`~llm.data.deid.records.RecordDeidentifier`).
        config: the run's :class:`~llm.data.deid.records._RunConfig` (its key never
            appears in a ``repr``).
    """

    def __init__(self, make_worker: Callable[[Any], PatientWorker], config: Any) -> None:
        self.worker = make_worker(config)

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """De-identify each line of ``batch["line"]``.

        Returns:
            ``ok`` (False where the patient failed) and ``result``: the pickled
            :class:`~llm.data.deid.records._PatientResult`, or the pickled exception.
        """
        ok, results = [], []
        for line in batch["line"]:
            try:
                result = self.worker.process(PatientRecord.model_validate_json(str(line)))
                ok.append(True)
                results.append(pickle.dumps(result))
            except Exception as exc:  # raised again by the driver, never logged by Ray
                ok.append(False)
                results.append(_pickled_error(exc))
        return {"ok": np.array(ok, dtype=bool), "result": np.array(results, dtype=object)}


def _pickled_error(exc: Exception) -> bytes:
    """The exception, pickled so that the driver can raise it again.

    An exception whose ``__init__`` takes other arguments than its ``args`` does not
    unpickle (``AssetError``): it travels as a :class:`BadInputError` with the same
    message (exit code 2, as in one process), anything else as a ``RuntimeError``
    naming its type.
    """
    try:
        data = pickle.dumps(exc)
        pickle.loads(data)
        return data
    except Exception:
        if isinstance(exc, BadInputError):
            return pickle.dumps(BadInputError(str(exc)))
        return pickle.dumps(RuntimeError(f"{type(exc).__name__}: {exc}"))


def ray_results(
    lines: list[str],
    make_worker: Callable[[Any], PatientWorker],
    config: Any,
    *,
    workers: int,
    address: str,
) -> Iterator[Any]:
    """De-identify validated record lines on Ray; yield each result in input order.

    Args:
        lines: one JSON record a line, already validated by the driver.
        make_worker: builds each actor's de-identifier from ``config`` (once per actor).
        config: the run's settings (:class:`~llm.data.deid.records._RunConfig`).
        workers: actors in the pool (one CPU each); also the CPUs of a ``local`` Ray.
        address: ``local``, ``auto``, ``ray://HOST:PORT`` (:mod:`llm.ray_cluster`).

    Raises:
        BadInputError: a bad address, or Ray not installed.
        Exception: whatever de-identifying a patient raised (as in one process).
    """
    with ray_session(address, num_cpus=workers) as ray:
        if not lines:
            return
        context = ray.data.DataContext.get_current()
        context.execution_options.preserve_order = True  # OUT keeps IN's order
        context.enable_progress_bars = False  # the CLI draws its own
        blocks = min(MAX_BLOCKS, max(1, math.ceil(len(lines) / BATCH_PATIENTS)))
        dataset = ray.data.from_items(
            [{"line": line} for line in lines], override_num_blocks=blocks
        ).map_batches(
            DeidActor,
            fn_constructor_kwargs={"make_worker": make_worker, "config": config},
            batch_size=BATCH_PATIENTS,
            batch_format="numpy",
            compute=ray.data.ActorPoolStrategy(size=workers),
            num_cpus=1,
        )
        for row in dataset.iter_rows():
            payload = pickle.loads(row["result"])
            if not row["ok"]:
                raise payload
            yield payload
