"""Reshaping a batched, left-padded Hugging Face KV cache between decode steps.

Continuous batching needs three operations on the cache of a running batch:
drop rows (a sequence finished or its client went away), add rows (newly
admitted requests, prefilled separately) and drop leading columns that are
padding in every row. Rows are left-padded, so all of them end at the same
column and the next token of every row is appended at the same place.

Padding is safe to add on the left of a row: each cached key already carries
its rotary position, and the attention mask hides the padded columns, so a
row's attention scores do not change. Only caches made of plain
:class:`~transformers.DynamicLayer` layers can be reshaped this way (sliding
window layers keep their own offsets); :func:`reshapable` tells which.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from transformers.cache_utils import DynamicCache, DynamicLayer


@dataclass
class BatchCache:
    """The KV cache of a batch and its attention mask (``[rows, columns]``, 1 = real token)."""

    cache: DynamicCache
    mask: torch.Tensor

    @property
    def rows(self) -> int:
        """Number of sequences in the batch."""
        return int(self.mask.shape[0])


def reshapable(cache: DynamicCache) -> bool:
    """True when every layer is a plain dynamic layer whose rows and columns may be edited."""
    return all(type(layer) is DynamicLayer for layer in cache.layers)


def _layers(cache: DynamicCache) -> list[tuple[torch.Tensor, torch.Tensor]]:
    pairs = []
    for layer in cache.layers:
        if not isinstance(layer, DynamicLayer) or layer.keys is None or layer.values is None:
            raise ValueError("the KV cache has a layer that is empty or not a dynamic layer")
        pairs.append((layer.keys, layer.values))
    return pairs


def _rebuild(pairs: list[tuple[torch.Tensor, torch.Tensor]]) -> DynamicCache:
    return DynamicCache(ddp_cache_data=pairs)


def select_rows(batch: BatchCache, rows: list[int]) -> BatchCache:
    """Keep only ``rows`` (in that order), then drop columns that became padding everywhere.

    Args:
        batch: the batch cache.
        rows: indices of the rows to keep; must not be empty.

    Returns:
        The smaller batch cache.
    """
    index = torch.tensor(rows, dtype=torch.long, device=batch.mask.device)
    pairs = [(k.index_select(0, index), v.index_select(0, index)) for k, v in _layers(batch.cache)]
    return trim_left(BatchCache(_rebuild(pairs), batch.mask.index_select(0, index)))


def trim_left(batch: BatchCache) -> BatchCache:
    """Drop the leading columns that are padding in every row."""
    real = batch.mask.any(dim=0).nonzero()
    start = int(real[0].item()) if real.numel() else 0
    if start == 0:
        return batch
    pairs = [(k[:, :, start:, :], v[:, :, start:, :]) for k, v in _layers(batch.cache)]
    return BatchCache(_rebuild(pairs), batch.mask[:, start:])


def _pad_left(batch: BatchCache, columns: int) -> BatchCache:
    extra = columns - int(batch.mask.shape[1])
    if extra == 0:
        return batch
    pairs = []
    for k, v in _layers(batch.cache):
        pad_k = k.new_zeros((k.shape[0], k.shape[1], extra, k.shape[3]))
        pad_v = v.new_zeros((v.shape[0], v.shape[1], extra, v.shape[3]))
        pairs.append((torch.cat([pad_k, k], dim=2), torch.cat([pad_v, v], dim=2)))
    mask = torch.cat([batch.mask.new_zeros((batch.rows, extra)), batch.mask], dim=1)
    return BatchCache(_rebuild(pairs), mask)


def concat_rows(first: BatchCache, second: BatchCache) -> BatchCache:
    """Stack two batch caches (``first``'s rows, then ``second``'s), left-padding the shorter.

    Args:
        first: the running batch.
        second: newly prefilled rows.

    Returns:
        One batch cache holding both.
    """
    columns = max(int(first.mask.shape[1]), int(second.mask.shape[1]))
    a, b = _pad_left(first, columns), _pad_left(second, columns)
    pairs = [
        (torch.cat([ka, kb], dim=0), torch.cat([va, vb], dim=0))
        for (ka, va), (kb, vb) in zip(_layers(a.cache), _layers(b.cache), strict=True)
    ]
    return BatchCache(_rebuild(pairs), torch.cat([a.mask, b.mask], dim=0))
