"""The local runner on Ray Data (``eval run --ray-address``): one model per actor, shards in order.

The driver (the process that runs ``eval run``) plans the suite and reads every task's
examples exactly as without Ray, so ``read = used + rejected`` and a bad row's error are
the same. The prediction step is then spread: ``eval run`` cuts the examples into shards of
``shard_size`` (the chunks the single-process loop hands :class:`~eval.runners.local.LocalRunner`
one at a time) and hands them over with the function that turns a shard into prediction
rows on a runner (:func:`eval.run.predict_shard`, bound to the task); the shards go to Ray
Data actors through :func:`llm.data.ray_map.map_lines_on_ray` (the engine of ``data deid``
and ``data build``), each actor loads the model folder once into its own ``LocalRunner``
and calls that function on each shard it is given, and the rows come back in input order.
This module knows neither tasks nor the prediction loop (``eval.run`` and ``eval.tasks``
import the runners, not the other way round). Every shard is the batch one process would have
generated, padded the same way, and an actor runs torch on ``cpus_per_worker`` threads, so
the completions, scores and everything written from them (``predictions.jsonl``,
``report.md``; ``report.json`` but for its times) are byte-identical to a run without Ray
whose torch uses as many threads (tested: ``tests/eval/test_run_on_ray.py``; with another
thread count a score's last bits may differ).

The driver never loads the model: it checks the folder and its chat template, and the
actors do the rest (a model error comes back from the first actor, raised again here).
On a cluster every node needs this project installed and the model folder and
dataset paths on storage mounted at the same place.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from eval.runners.base import PredictShard
from llm.errors import BadInputError

# a shard's result: its prediction rows and how many of its prompts were cut to fit
ShardResult = tuple[list[dict[str, Any]], int]


@dataclass(frozen=True)
class _ShardConfig:
    """What every actor of one task is given (pickled once into Ray's object store)."""

    model_path: str
    batch_size: int
    predict_shard: PredictShard
    threads: int


def shard_predictor(config: _ShardConfig) -> Callable[[str], ShardResult]:
    """One Ray actor's work: the model loaded once, then the prediction rows of each shard."""
    import torch

    from eval.runners.local import LocalRunner

    # the CPUs Ray reserved for this actor; also what makes its sums those of a process
    # with as many threads (a score's last bits depend on how a reduction is split)
    torch.set_num_threads(config.threads)
    runner = LocalRunner(config.model_path, batch_size=config.batch_size)

    def predict(shard: str) -> ShardResult:
        before = runner.truncated_prompts
        rows = config.predict_shard(shard, runner)
        return rows, runner.truncated_prompts - before

    return predict


class LocalRunnerOnRay:
    """The local runner spread over Ray Data actors, each loading the model folder itself.

    Connects to Ray when built (a ``local`` Ray starts here, once for the whole suite) and
    disconnects on :meth:`close`. Each task's examples go to ``workers`` actors, each with
    ``cpus_per_worker`` CPUs (its torch threads) and ``gpus_per_worker`` GPUs; the actors
    are started per task.

    Args:
        model_path: model folder (safetensors + tokenizer with a chat template), at the
            same path on every node.
        batch_size: prompts generated together by an actor; also the shard size.
        address: ``local``, ``auto``, ``ray://HOST:PORT`` or ``HOST:PORT``.
        workers: Ray actors, each holding one copy of the model.
        cpus_per_worker: CPUs reserved per actor, and its torch threads.
        gpus_per_worker: GPUs reserved per actor (0: CPU only).

    Raises:
        BadInputError: a bad batch size, address or model folder, a tokenizer with no
            chat template, or Ray not installed.
    """

    kind = "local"
    supports_images = False
    supports_loglikelihood = True

    def __init__(
        self,
        model_path: str | Path,
        *,
        batch_size: int = 8,
        address: str,
        workers: int = 1,
        cpus_per_worker: int = 1,
        gpus_per_worker: float = 0,
    ) -> None:
        from llm.ray_cluster import check_ray_address, ray_session

        check_ray_address(address)  # before torch is imported: a typo costs no time
        from llm.models.loading import check_model_folder, load_tokenizer

        if batch_size < 1:
            raise BadInputError(f"--batch-size must be at least 1, got {batch_size}")
        if workers < 1 or cpus_per_worker < 1:
            raise BadInputError(
                f"--workers and --cpus-per-worker must be at least 1, got {workers} and "
                f"{cpus_per_worker}"
            )
        self.model_path = Path(model_path)
        # the checks LocalRunner makes before its model loads, here where exit 2 is cheap
        folder = check_model_folder(self.model_path)
        if not getattr(load_tokenizer(folder), "chat_template", None):
            raise BadInputError(f"{self.model_path}: the tokenizer has no chat template")
        self.batch_size = batch_size
        self.chunk_size = batch_size
        self.shard_size = batch_size
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.truncated_prompts = 0
        self._session = ExitStack()
        self._session.enter_context(ray_session(address, num_cpus=workers * cpus_per_worker))

    def predict(
        self, shards: Sequence[str], predict_shard: PredictShard
    ) -> Iterator[dict[str, Any]]:
        """The prediction rows of ``shards``, computed by the actors, in input order.

        Raises:
            BadInputError: what an actor's ``LocalRunner`` raised (a model that does not
                load, a prompt that cannot fit), raised again here.
        """
        from llm.data.ray_map import map_lines_on_ray

        config = _ShardConfig(
            str(self.model_path), self.batch_size, predict_shard, self.cpus_per_worker
        )
        results = map_lines_on_ray(
            list(shards),
            shard_predictor,
            config,
            workers=self.workers,
            address=self.address,
            batch_records=1,  # a shard is already a batch of model work
            cpus_per_worker=self.cpus_per_worker,
            gpus_per_worker=self.gpus_per_worker,
        )
        for rows, truncated in results:
            self.truncated_prompts += truncated
            yield from rows

    def describe(self) -> dict[str, Any]:
        """Runner kind, model folder, batch size and where it ran (Ray address, actors)."""
        return {
            "runner": self.kind,
            "model": str(self.model_path),
            "batch_size": self.batch_size,
            "ray": {
                "address": self.address,
                "workers": self.workers,
                "cpus_per_worker": self.cpus_per_worker,
                "gpus_per_worker": self.gpus_per_worker,
            },
        }

    def close(self) -> None:
        """Disconnect from Ray (a ``local`` Ray stops)."""
        self._session.close()
