"""Batches for causal-LM training: packed rows without cross-example attention, or padded rows.

Packing puts several tokenized examples in one row of at most ``max_length``
tokens and gives each example ``position_ids`` that restart at 0. No
attention-mask tensor is passed: transformers 5.x (``masking_utils.
find_packed_sequence_indices``) reads the restarts and builds a block-diagonal
causal mask for ``sdpa`` and ``eager`` attention, so an example attends only to
itself and a packed row gives the same logits and loss as its examples run one
by one (``tests/train/test_packing.py`` proves it). Two conditions, checked by
:func:`check_model_for_packing`:

* ``model.config.use_cache`` must be false. With the cache on, the model makes
  a ``DynamicCache`` even in training, and transformers skips packed-sequence
  detection whenever a cache exists: examples then silently attend to each other.
* ``flash_attention_2``/``3`` infer packing from ``position_ids`` only for a
  single row; with several rows the collator must send the varlen kwargs
  (``cu_seq_lens_q`` ...): ``PackedCollator(flash_attn_kwargs=True)``. So must
  ``sdpa_varlen`` (:mod:`llm.train.attention`), which runs ``sdpa`` on each
  example apart instead of through the block-diagonal mask.

The first token of each packed example gets label ``IGNORE_INDEX``: the model's
shifted loss would otherwise train the previous example's last token to predict
it.
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Literal

import torch

from llm.errors import BadInputError
from llm.models.chat_tokenize import IGNORE_INDEX
from llm.train.attention import SDPA_VARLEN

PackingStrategy = Literal["best_fit", "sequential"]

# Attention implementations whose mask creation reads packed sequences from reset
# position_ids for any number of rows (transformers 5.19 masking_utils).
POSITION_ID_PACKING_ATTENTION = ("sdpa", "eager")
# Kernels that read each example's bounds from cu_seq_lens: flash attention (which infers
# them from position_ids for a single row only) and sdpa_varlen (llm.train.attention).
CU_SEQLENS_ATTENTION = ("flash_attention_2", "flash_attention_3", SDPA_VARLEN)


def plan_packing(
    lengths: Sequence[int], max_length: int, *, strategy: PackingStrategy = "best_fit"
) -> list[list[int]]:
    """Group examples into rows of at most ``max_length`` tokens.

    ``best_fit`` is best-fit decreasing (longest first, each into the fullest
    row it fits; O(n log n)), which packs close to optimally. ``sequential``
    keeps the input order and opens a new row when the next example does not fit.

    Args:
        lengths: token count of each example (or of each pre-packed unit).
        max_length: row capacity in tokens.
        strategy: ``"best_fit"`` or ``"sequential"``.

    Returns:
        The rows, each a list of indices into ``lengths``; every index appears once.

    Raises:
        BadInputError: an example is empty or longer than ``max_length``.
    """
    if max_length < 1:
        raise BadInputError(f"max_length must be at least 1, got {max_length}")
    for i, n in enumerate(lengths):
        if not 0 < n <= max_length:
            raise BadInputError(
                f"example {i} has {n} tokens; packing needs 1..{max_length} "
                "(tokenize with the same max_length)"
            )
    if strategy == "sequential":
        rows: list[list[int]] = []
        room = 0
        for i, n in enumerate(lengths):
            if not rows or n > room:
                rows.append([])
                room = max_length
            rows[-1].append(i)
            room -= n
        return rows
    if strategy != "best_fit":
        raise BadInputError(f"unknown packing strategy {strategy!r}: use best_fit or sequential")
    order = sorted(range(len(lengths)), key=lambda i: (-lengths[i], i))
    bins: list[list[int]] = []
    # (room left, row index), sorted: the first entry with room >= n is the best fit
    free: list[tuple[int, int]] = []
    for i in order:
        n = lengths[i]
        at = bisect.bisect_left(free, (n, -1))
        if at < len(free):
            room, row = free.pop(at)
        else:
            room, row = max_length, len(bins)
            bins.append([])
        bins[row].append(i)
        if room - n > 0:
            bisect.insort(free, (room - n, row))
    return bins


def check_model_for_packing(model: Any, *, flash_attn_kwargs: bool = False) -> None:
    """Refuse a model that would let packed examples attend to each other.

    Args:
        model: a transformers model (or a wrapper with ``.config``, e.g. a PEFT model).
        flash_attn_kwargs: whether the collator sends ``cu_seq_lens_*`` kwargs.

    Raises:
        BadInputError: the model's cache is on, or its attention implementation
            cannot keep packed examples apart; the message says what to change.
    """
    config = model.config
    if getattr(config, "use_cache", False):
        raise BadInputError(
            "packed batches need model.config.use_cache = False: with the cache on, "
            "transformers skips the packed-sequence mask and packed examples attend to "
            "each other"
        )
    impl = getattr(config, "_attn_implementation", None)
    if impl in CU_SEQLENS_ATTENTION:
        if not flash_attn_kwargs:
            raise BadInputError(
                f"attn_implementation {impl!r} keeps packed examples apart (in rows of "
                "several) only with cu_seq_lens: use PackedCollator(flash_attn_kwargs=True)"
            )
        return
    if impl not in POSITION_ID_PACKING_ATTENTION:
        known = ", ".join(POSITION_ID_PACKING_ATTENTION + CU_SEQLENS_ATTENTION)
        raise BadInputError(
            f"attn_implementation {impl!r} is not known to separate packed examples: use one "
            f"of {known}, or PaddedCollator"
        )


def _stack_pixel_values(features: Sequence[Mapping[str, Any]]) -> torch.Tensor | None:
    """Images of ``features`` in the order given, one tensor (``None`` when there are none)."""
    with_pixels = [f for f in features if f.get("pixel_values") is not None]
    if not with_pixels:
        return None
    return torch.cat([torch.as_tensor(f["pixel_values"]) for f in with_pixels], dim=0)


def _round_up(n: int, multiple: int | None) -> int:
    return n if not multiple else -(-n // multiple) * multiple


@dataclass(frozen=True)
class PackedBatch:
    """Rows of packed examples, and how many tokens in them are real.

    Attributes:
        input_ids: ``(rows, width)`` token ids; the tail of a row is padding.
        labels: ``(rows, width)``; ``IGNORE_INDEX`` on padding, prompt tokens and
            each example's first token.
        position_ids: ``(rows, width)``, restarting at 0 for each example (and
            for the padding tail, which forms a block of its own).
        seq_lens: per row, the lengths of its examples (padding not included).
        pixel_values: images of the examples in row-major order, if any.
        flash_attn_kwargs: whether :meth:`model_inputs` adds flash varlen kwargs.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    position_ids: torch.Tensor
    seq_lens: list[list[int]]
    pixel_values: torch.Tensor | None = None
    flash_attn_kwargs: bool = False

    @property
    def num_real_tokens(self) -> int:
        """Tokens that belong to examples (padding excluded)."""
        return sum(map(sum, self.seq_lens))

    @property
    def num_label_tokens(self) -> int:
        """Tokens that carry a loss."""
        return int((self.labels != IGNORE_INDEX).sum())

    @property
    def num_slots(self) -> int:
        """Token positions computed, padding included."""
        return self.input_ids.numel()

    @property
    def cu_seqlens(self) -> torch.Tensor:
        """Cumulative block lengths over the flattened batch (padding tails as blocks), int32."""
        width = self.input_ids.shape[1]
        blocks: list[int] = []
        for lens in self.seq_lens:
            blocks.extend(lens)
            if width > sum(lens):
                blocks.append(width - sum(lens))
        return torch.tensor([0, *itertools.accumulate(blocks)], dtype=torch.int32)

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments for ``model(**inputs)``: no attention mask, on purpose."""
        inputs: dict[str, Any] = {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "position_ids": self.position_ids,
        }
        if self.pixel_values is not None:
            inputs["pixel_values"] = self.pixel_values
        if self.flash_attn_kwargs:
            cu = self.cu_seqlens.to(self.input_ids.device)
            longest = int((cu[1:] - cu[:-1]).max())
            inputs.update(
                cu_seq_lens_q=cu, cu_seq_lens_k=cu, max_length_q=longest, max_length_k=longest
            )
        return inputs

    def to(self, device: torch.device | str) -> PackedBatch:
        """The batch with its tensors on ``device``."""
        pixels = self.pixel_values.to(device) if self.pixel_values is not None else None
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            labels=self.labels.to(device),
            position_ids=self.position_ids.to(device),
            pixel_values=pixels,
        )


@dataclass(frozen=True)
class PaddedBatch:
    """Right-padded rows, one example each.

    Attributes:
        input_ids: ``(rows, width)`` token ids.
        labels: ``(rows, width)``, ``IGNORE_INDEX`` on padding.
        attention_mask: ``(rows, width)``, 1 on real tokens.
        pixel_values: images of the examples in row order, if any.
    """

    input_ids: torch.Tensor
    labels: torch.Tensor
    attention_mask: torch.Tensor
    pixel_values: torch.Tensor | None = None

    @property
    def num_real_tokens(self) -> int:
        """Tokens that belong to examples (padding excluded)."""
        return int(self.attention_mask.sum())

    @property
    def num_label_tokens(self) -> int:
        """Tokens that carry a loss."""
        return int((self.labels != IGNORE_INDEX).sum())

    @property
    def num_slots(self) -> int:
        """Token positions computed, padding included."""
        return self.input_ids.numel()

    def model_inputs(self) -> dict[str, Any]:
        """Keyword arguments for ``model(**inputs)``."""
        inputs: dict[str, Any] = {
            "input_ids": self.input_ids,
            "labels": self.labels,
            "attention_mask": self.attention_mask,
        }
        if self.pixel_values is not None:
            inputs["pixel_values"] = self.pixel_values
        return inputs

    def to(self, device: torch.device | str) -> PaddedBatch:
        """The batch with its tensors on ``device``."""
        pixels = self.pixel_values.to(device) if self.pixel_values is not None else None
        return replace(
            self,
            input_ids=self.input_ids.to(device),
            labels=self.labels.to(device),
            attention_mask=self.attention_mask.to(device),
            pixel_values=pixels,
        )


def _ids_and_labels(feature: Mapping[str, Any], i: int) -> tuple[list[int], list[int]]:
    try:
        ids, labels = list(feature["input_ids"]), list(feature["labels"])
    except KeyError as err:
        raise BadInputError(f"batch feature {i}: missing {err.args[0]!r}") from None
    if len(ids) != len(labels):
        raise BadInputError(
            f"batch feature {i}: input_ids has {len(ids)} tokens, labels {len(labels)}"
        )
    if not ids:
        raise BadInputError(f"batch feature {i}: no tokens")
    return ids, labels


class PackedCollator:
    """Packs a list of tokenized examples into rows (``collate_fn`` / ``data_collator``).

    A feature is one tokenized example (``input_ids``, ``labels``) or a unit
    already packed by :func:`pack_dataset` (``seq_lens`` says where its
    examples start); units are never split. Rows are as wide as the longest
    row in the batch (rounded up to ``pad_to_multiple_of``).

    Args:
        max_length: row capacity in tokens.
        pad_token_id: id written into the padding tail.
        strategy: how units are placed into rows (:func:`plan_packing`).
        pad_to_multiple_of: round the row width up to this multiple.
        flash_attn_kwargs: add ``cu_seq_lens_q/k`` and ``max_length_q/k`` to the
            model inputs (for flash attention with several rows).
    """

    def __init__(
        self,
        *,
        max_length: int,
        pad_token_id: int,
        strategy: PackingStrategy = "best_fit",
        pad_to_multiple_of: int | None = None,
        flash_attn_kwargs: bool = False,
    ) -> None:
        if max_length < 1:
            raise BadInputError(f"max_length must be at least 1, got {max_length}")
        self.max_length = max_length
        self.pad_token_id = pad_token_id
        self.strategy: PackingStrategy = strategy
        self.pad_to_multiple_of = pad_to_multiple_of
        self.flash_attn_kwargs = flash_attn_kwargs

    def check_model(self, model: Any) -> None:
        """Raise :class:`BadInputError` if ``model`` would mix packed examples."""
        check_model_for_packing(model, flash_attn_kwargs=self.flash_attn_kwargs)

    def collate(self, features: Sequence[Mapping[str, Any]]) -> PackedBatch:
        """Pack ``features`` into a :class:`PackedBatch`.

        Raises:
            BadInputError: a feature lacks ids or labels, or is longer than ``max_length``.
        """
        units = [_ids_and_labels(f, i) for i, f in enumerate(features)]
        unit_lens: list[list[int]] = []
        for i, (f, (ids, _)) in enumerate(zip(features, units, strict=True)):
            lens = [int(n) for n in f.get("seq_lens") or [len(ids)]]
            if sum(lens) != len(ids) or min(lens) < 1:
                raise BadInputError(
                    f"batch feature {i}: seq_lens {lens} do not add up to {len(ids)}"
                )
            unit_lens.append(lens)
        plan = plan_packing([len(ids) for ids, _ in units], self.max_length, strategy=self.strategy)
        width = _round_up(
            max(sum(len(units[u][0]) for u in row) for row in plan), self.pad_to_multiple_of
        )

        input_ids = torch.full((len(plan), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(plan), width), IGNORE_INDEX, dtype=torch.long)
        position_ids = torch.zeros((len(plan), width), dtype=torch.long)
        seq_lens: list[list[int]] = []
        for r, row in enumerate(plan):
            at = 0
            row_lens: list[int] = []
            for u in row:
                ids, labs = units[u]
                input_ids[r, at : at + len(ids)] = torch.tensor(ids)
                labels[r, at : at + len(ids)] = torch.tensor(labs)
                for n in unit_lens[u]:
                    position_ids[r, at : at + n] = torch.arange(n)
                    # nothing of this example precedes its first token
                    labels[r, at] = IGNORE_INDEX
                    at += n
                    row_lens.append(n)
            position_ids[r, at:] = torch.arange(width - at)
            seq_lens.append(row_lens)
        ordered = [features[u] for row in plan for u in row]
        return PackedBatch(
            input_ids=input_ids,
            labels=labels,
            position_ids=position_ids,
            seq_lens=seq_lens,
            pixel_values=_stack_pixel_values(ordered),
            flash_attn_kwargs=self.flash_attn_kwargs,
        )

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Model inputs of the packed batch (what HF ``Trainer`` expects of a collator)."""
        return self.collate(features).model_inputs()


class PaddedCollator:
    """Right-pads tokenized examples, one per row (``collate_fn`` / ``data_collator``).

    Args:
        pad_token_id: id written into the padding.
        pad_to_multiple_of: round the row width up to this multiple.
    """

    def __init__(self, *, pad_token_id: int, pad_to_multiple_of: int | None = None) -> None:
        self.pad_token_id = pad_token_id
        self.pad_to_multiple_of = pad_to_multiple_of

    def collate(self, features: Sequence[Mapping[str, Any]]) -> PaddedBatch:
        """Pad ``features`` into a :class:`PaddedBatch`.

        Raises:
            BadInputError: a feature lacks ids or labels, or is a packed unit.
        """
        rows = [_ids_and_labels(f, i) for i, f in enumerate(features)]
        for i, f in enumerate(features):
            if len(f.get("seq_lens") or []) > 1:
                raise BadInputError(
                    f"batch feature {i} holds several packed examples: use PackedCollator"
                )
        width = _round_up(max(len(ids) for ids, _ in rows), self.pad_to_multiple_of)
        input_ids = torch.full((len(rows), width), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(rows), width), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, (ids, labs) in enumerate(rows):
            input_ids[r, : len(ids)] = torch.tensor(ids)
            labels[r, : len(ids)] = torch.tensor(labs)
            labels[r, 0] = IGNORE_INDEX  # as in packed rows: keeps label counts equal
            attention_mask[r, : len(ids)] = 1
        return PaddedBatch(
            input_ids=input_ids,
            labels=labels,
            attention_mask=attention_mask,
            pixel_values=_stack_pixel_values(features),
        )

    def __call__(self, features: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """Model inputs of the padded batch (what HF ``Trainer`` expects of a collator)."""
        return self.collate(features).model_inputs()


def pack_dataset(dataset: Any, *, max_length: int, strategy: PackingStrategy = "best_fit") -> Any:
    """Pack a tokenized ``datasets.Dataset`` into rows ahead of training.

    Packing the whole dataset fills rows better than packing each batch. Each
    output row holds ``input_ids``, ``labels`` (concatenated), ``seq_lens`` and
    ``example_indices`` (the source rows, e.g. to fetch their images); feed the
    rows to :class:`PackedCollator`, which keeps each one whole. With HF
    ``Trainer``, set ``remove_unused_columns=False`` so ``seq_lens`` reaches
    the collator.

    Args:
        dataset: rows with ``input_ids`` and ``labels`` (from
            :func:`~llm.train.tokenize.tokenize_dataset`).
        max_length: row capacity in tokens.
        strategy: see :func:`plan_packing`.

    Returns:
        A ``datasets.Dataset`` of packed rows.

    Raises:
        BadInputError: a row is longer than ``max_length``.
    """
    import datasets  # heavy; only this function needs it

    all_ids, all_labels = list(dataset["input_ids"]), list(dataset["labels"])
    lengths = [len(ids) for ids in all_ids]
    plan = plan_packing(lengths, max_length, strategy=strategy)
    rows: dict[str, list[Any]] = {
        "input_ids": [],
        "labels": [],
        "seq_lens": [],
        "example_indices": [],
    }
    for row in plan:
        rows["input_ids"].append([t for i in row for t in all_ids[i]])
        rows["labels"].append([t for i in row for t in all_labels[i]])
        rows["seq_lens"].append([lengths[i] for i in row])
        rows["example_indices"].append(list(row))
    return datasets.Dataset.from_dict(rows)
