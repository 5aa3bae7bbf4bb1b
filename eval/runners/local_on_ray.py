"""The local runner on Ray Data (``eval run --ray-address``): one model per actor, shards in order.

The driver (the process that runs ``eval run``) plans the suite and reads every task's
examples exactly as without Ray, so ``read = used + rejected`` and a bad row's error are
the same. The prediction step is then spread: the examples are cut into shards of
``batch_size`` (the chunks the single-process loop hands :class:`~eval.runners.local.LocalRunner`
one at a time), the shards go to Ray Data actors through :func:`llm.data.ray_map.map_lines_on_ray`
(the engine of ``data deid`` and ``data build``), each actor loads the model folder once into
its own ``LocalRunner`` and runs :func:`eval.run.iter_predictions` on each shard it is given,
and the rows come back in input order. Every shard is the batch one process would have
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

import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llm.errors import BadInputError

if TYPE_CHECKING:
    from eval.run import TaskPlan
    from eval.tasks.dataset import Example

# a shard's result: its prediction rows and how many of its prompts were cut to fit
ShardResult = tuple[list[dict[str, Any]], int]


@dataclass(frozen=True)
class _ShardConfig:
    """What every actor of one task is given (pickled once into Ray's object store)."""

    model_path: str
    batch_size: int
    plan: TaskPlan
    seed: int
    threads: int


def shard_predictor(config: _ShardConfig) -> Callable[[str], ShardResult]:
    """One Ray actor's work: the model loaded once, then the prediction rows of each shard.

    A shard is a JSON list of examples (``dataclasses.asdict`` of
    :class:`~eval.tasks.dataset.Example`).
    """
    import torch

    from eval.run import iter_predictions
    from eval.runners.local import LocalRunner
    from eval.tasks.dataset import Example

    # the CPUs Ray reserved for this actor; also what makes its sums those of a process
    # with as many threads (a score's last bits depend on how a reduction is split)
    torch.set_num_threads(config.threads)
    runner = LocalRunner(config.model_path, batch_size=config.batch_size)

    def predict(shard: str) -> ShardResult:
        examples = [Example(**fields) for fields in json.loads(shard)]
        before = runner.truncated_prompts
        rows = list(
            iter_predictions(
                config.plan, examples, runner, seed=config.seed, chunk_size=runner.chunk_size
            )
        )
        return rows, runner.truncated_prompts - before

    return predict


def shards_of(examples: Sequence[Example], size: int) -> list[str]:
    """The examples cut into shards of ``size`` in order, each a JSON list of examples."""
    return [
        json.dumps([asdict(e) for e in examples[i : i + size]], ensure_ascii=False)
        for i in range(0, len(examples), size)
    ]


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
        self.address = address
        self.workers = workers
        self.cpus_per_worker = cpus_per_worker
        self.gpus_per_worker = gpus_per_worker
        self.truncated_prompts = 0
        self._session = ExitStack()
        self._session.enter_context(ray_session(address, num_cpus=workers * cpus_per_worker))

    def predict(
        self, plan: TaskPlan, examples: Sequence[Example], *, seed: int
    ) -> Iterator[dict[str, Any]]:
        """The prediction rows of ``examples``, computed by the actors, in input order.

        Raises:
            BadInputError: what an actor's ``LocalRunner`` raised (a model that does not
                load, a prompt that cannot fit), raised again here.
        """
        from llm.data.ray_map import map_lines_on_ray

        config = _ShardConfig(
            str(self.model_path), self.batch_size, plan, seed, self.cpus_per_worker
        )
        results = map_lines_on_ray(
            shards_of(examples, self.batch_size),
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
