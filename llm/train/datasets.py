"""Task datasets for training: load, tokenize, mix, shuffle, pack.

The input is the output folder of ``clinical-llm data build`` (see
``llm/data/build.py``): ``DIR/<task>/`` is a ``DatasetDict`` saved with
``save_to_disk`` and ``DIR/manifest.json`` records its counts and content
hashes. Each task split is tokenized on its own (text tasks store ``content``
as a string, multimodal tasks as a list of parts, and Arrow cannot concatenate
the two), then the tokenized tasks are concatenated and shuffled with the
recipe's seed. Datasets are loaded into memory so that ``datasets.map`` writes
no cache files next to the build output (two training processes would race on
them, and a build folder should stay as it was built).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llm.errors import BadInputError
from llm.files import read_json_object
from llm.manifest import file_sha256
from llm.train.packing import pack_dataset
from llm.train.recipe import Recipe
from llm.train.tokenize import TokenizeStats, tokenize_dataset

log = logging.getLogger(__name__)

# Columns a training row keeps: what the collators read (and the images of multimodal rows).
TOKEN_COLUMNS = ("input_ids", "labels", "num_tokens", "num_label_tokens")

# Optional per-task step that adds model inputs a tokenizer cannot make (pixel values).
RowTransform = Callable[[Any, str], Any]


@dataclass
class SplitData:
    """One split of the training mix, ready for a collator.

    Attributes:
        name: the split name in the task datasets (``train``, ``validation``).
        dataset: tokenized rows (packed units when packing), shuffled.
        examples: examples in it (several per row when packed).
        tokens: real (non-pad) tokens over all examples.
        label_tokens: tokens that carry a loss.
        stats: tokenization counts per task (``read = used + rejected``).
    """

    name: str
    dataset: Any
    examples: int
    tokens: int
    label_tokens: int
    stats: dict[str, TokenizeStats] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        """Counts for the run manifest (no text)."""
        return {
            "split": self.name,
            "rows": len(self.dataset),
            "examples": self.examples,
            "tokens": self.tokens,
            "label_tokens": self.label_tokens,
            "tokenize": {
                task: {
                    "read": s.read,
                    "used": s.used,
                    "rejected": s.rejected_total,
                    "rejected_by_reason": dict(s.rejected),
                    "truncated": s.truncated,
                }
                for task, s in self.stats.items()
            },
        }


@dataclass
class TrainingData:
    """The train split and (optionally) the eval split of a recipe's task mix."""

    train: SplitData
    eval: SplitData | None


def read_dataset_manifest(dataset_dir: Path) -> dict[str, Any]:
    """The ``manifest.json`` of a ``data build`` output folder.

    Raises:
        BadInputError: the folder or its manifest is missing or is not JSON.
    """
    path = dataset_dir / "manifest.json"
    if not dataset_dir.is_dir():
        raise BadInputError(
            f"data.dataset_dir: {dataset_dir} not found; build it with `clinical-llm data build "
            f"--records R --tasks ... --out {dataset_dir}` (or `clinical-llm demo`)"
        )
    manifest = read_json_object(
        path,
        what="dataset manifest",
        hint="data.dataset_dir must be an output folder of `clinical-llm data build`",
    )
    if not isinstance(manifest.get("tasks"), dict):
        raise BadInputError(f"{path}: tasks: missing; not a task dataset manifest")
    return manifest


def dataset_provenance(dataset_dir: Path, tasks: list[str]) -> dict[str, Any]:
    """What the run trained on, for its manifest: hashes and counts of each task used.

    Args:
        dataset_dir: the ``data build`` output folder.
        tasks: the recipe's tasks.

    Returns:
        The folder, its manifest's SHA-256, the records hash it was built from and,
        per task, the content hash and split counts the build recorded.

    Raises:
        BadInputError: the manifest is missing or lacks one of ``tasks``.
    """
    manifest = read_dataset_manifest(dataset_dir)
    entries: dict[str, Any] = {}
    for task in tasks:
        entry = manifest["tasks"].get(task)
        if not isinstance(entry, dict):
            built = ", ".join(sorted(manifest["tasks"])) or "none"
            raise BadInputError(
                f"{dataset_dir / 'manifest.json'}: tasks.{task}: not built (built: {built}); "
                f"rebuild with --tasks including {task} or drop it from data.tasks"
            )
        entries[task] = {
            "content_sha256": entry.get("content_sha256"),
            "counts": entry.get("counts"),
            "answers": entry.get("answers"),
        }
    records = manifest.get("records") or {}
    return {
        "dataset_dir": str(dataset_dir),
        "manifest_sha256": file_sha256(dataset_dir / "manifest.json"),
        "git_commit": manifest.get("git_commit"),
        "records_sha256": records.get("sha256") if isinstance(records, dict) else None,
        "tasks": entries,
    }


def load_task_split(dataset_dir: Path, task: str, split: str) -> Any:
    """One split of one task dataset, loaded into memory.

    Raises:
        BadInputError: the task folder is missing, is not a saved ``DatasetDict``,
            or has no such split.
    """
    import datasets

    folder = dataset_dir / task
    if not (folder / "dataset_dict.json").is_file():
        raise BadInputError(
            f"{folder}: no task dataset (dataset_dict.json missing); build it with "
            f"`clinical-llm data build --tasks {task} --out {dataset_dir}`"
        )
    splits = datasets.load_from_disk(str(folder), keep_in_memory=True)
    if split not in splits:
        raise BadInputError(f"{folder}: no split {split!r} (has {', '.join(splits)})")
    return splits[split]


def _tokenized_split(
    recipe: Recipe,
    split: str,
    tokenizer: Any,
    image_seq_length: int,
    transform: RowTransform | None,
) -> tuple[Any, dict[str, TokenizeStats]]:
    import datasets

    data = recipe.data
    parts = []
    stats: dict[str, TokenizeStats] = {}
    for task in data.tasks:
        raw = load_task_split(data.dataset_dir, task, split)
        if len(raw) == 0:
            fix = (
                "rebuild the datasets with a train share (`clinical-llm data build --split`)"
                if split == data.train_split
                else "set data.eval_split to another split, or to null with "
                "training.eval_every_steps and training.early_stopping_patience null"
            )
            raise BadInputError(
                f"{data.dataset_dir / task}: the {split} split is empty (built with a 0 "
                f"share of patients, or too few patients for it); {fix}"
            )
        tokenized, task_stats = tokenize_dataset(
            raw,
            tokenizer,
            max_length=data.max_length,
            assistant_only_loss=data.assistant_only_loss,
            image_seq_length=image_seq_length,
            split=f"{task}/{split}",
        )
        log.info("tokenized %s/%s: %s", task, split, task_stats.summary())
        if task_stats.read and not task_stats.used:
            # a whole task lost is a setting problem (max_length), never a quiet omission
            raise BadInputError(
                f"{data.dataset_dir / task}: every {split} example was rejected "
                f"({task_stats.summary()}); raise data.max_length (now {data.max_length}) "
                "or drop the task"
            )
        stats[task] = task_stats
        keep = list(TOKEN_COLUMNS)
        if transform is not None:
            tokenized = transform(tokenized, task)
            keep.append("pixel_values")
        parts.append(tokenized.select_columns(keep))
    mixed = datasets.concatenate_datasets(parts) if len(parts) > 1 else parts[0]
    return mixed, stats


def build_split(
    recipe: Recipe,
    split: str,
    tokenizer: Any,
    *,
    image_seq_length: int = 1,
    transform: RowTransform | None = None,
    limit: int | None = None,
) -> SplitData:
    """Tokenize, mix and shuffle one split of the recipe's tasks; pack it when asked.

    Args:
        recipe: the validated recipe (data section, seed).
        split: split name in every task dataset.
        tokenizer: the model's tokenizer (with the project's chat template).
        image_seq_length: embedding slots per image in a multimodal model.
        transform: adds extra model inputs to a tokenized task split (pixel values).
        limit: keep at most this many examples after the shuffle.

    Returns:
        The split, ready for :class:`~llm.train.packing.PackedCollator` (packed
        units with ``seq_lens``) or :class:`~llm.train.packing.PaddedCollator`.

    Raises:
        BadInputError: a task split is missing, malformed, or nothing is left to
            train on after tokenization.
    """
    mixed, stats = _tokenized_split(recipe, split, tokenizer, image_seq_length, transform)
    mixed = mixed.shuffle(seed=recipe.training.seed, keep_in_memory=True)
    if limit is not None and len(mixed) > limit:
        mixed = mixed.select(range(limit), keep_in_memory=True)
    if len(mixed) == 0:
        counts = "; ".join(f"{t}: {s.summary()}" for t, s in stats.items())
        raise BadInputError(
            f"{recipe.data.dataset_dir}: no usable {split} examples in {', '.join(stats)} "
            f"({counts}); raise data.max_length or check the build"
        )
    lengths = mixed["num_tokens"]
    tokens = int(sum(lengths))
    label_tokens = int(sum(mixed["num_label_tokens"]))
    examples = len(mixed)
    dataset = mixed
    if recipe.data.packing:
        dataset = pack_dataset(mixed, max_length=recipe.data.max_length)
        log.info(
            "packed %d %s examples into %d rows of up to %d tokens (%.1f%% filled)",
            examples,
            split,
            len(dataset),
            recipe.data.max_length,
            100 * tokens / (len(dataset) * recipe.data.max_length),
        )
    return SplitData(
        name=split,
        dataset=dataset,
        examples=examples,
        tokens=tokens,
        label_tokens=label_tokens,
        stats=stats,
    )


def build_training_data(
    recipe: Recipe,
    tokenizer: Any,
    *,
    image_seq_length: int = 1,
    transform: RowTransform | None = None,
) -> TrainingData:
    """The train split (and eval split, when the recipe has one) of the recipe's task mix.

    Args:
        recipe: the validated recipe.
        tokenizer: the model's tokenizer.
        image_seq_length: embedding slots per image in a multimodal model.
        transform: adds extra model inputs to each tokenized task split.

    Returns:
        Both splits; ``eval`` is None when ``data.eval_split`` is null.

    Raises:
        BadInputError: see :func:`build_split`.
    """
    data = recipe.data
    train = build_split(
        recipe,
        data.train_split,
        tokenizer,
        image_seq_length=image_seq_length,
        transform=transform,
        limit=data.max_train_examples,
    )
    evaluation = None
    if data.eval_split is not None:
        evaluation = build_split(
            recipe,
            data.eval_split,
            tokenizer,
            image_seq_length=image_seq_length,
            transform=transform,
        )
    return TrainingData(train=train, eval=evaluation)
