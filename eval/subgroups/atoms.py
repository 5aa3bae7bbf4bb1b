"""Examples collapsed into atoms: rows a bootstrap cannot tell apart.

Two rows belong to the same atom when they share their group in every
attribute, their reference, their prediction and, when a metric reads it, their
score. Any metric of any group is then a function of the atom counts, so a
resample is a count vector over atoms (see :mod:`eval.subgroups.bootstrap`) and a block
of resamples is one sparse matrix product per attribute.

Resampling happens on the *fine* atoms (scores included when some metric reads
them). Metrics that ignore scores are computed on *coarse* atoms (groups and
labels only), whose counts are the fine counts summed by one sparse product:
with continuous scores there are about as many fine atoms as rows, but only a
few hundred coarse ones.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from scipy import sparse

from eval.metrics.functional import (
    AdditiveMetric,
    Metric,
    MetricInputs,
    RankMaps,
    RankMetric,
    rank_maps,
)
from eval.subgroups.intersections import group_parts
from eval.subgroups.predictions import UNKNOWN


def group_order(name: str) -> tuple[tuple[bool, str], ...]:
    """Sort key of group names: alphabetical per part, ``unknown`` last."""
    return tuple((part == UNKNOWN, part) for part in group_parts(name))


def factorize(
    values: np.ndarray, key: Callable[[str], Any] | None = None
) -> tuple[list[str], np.ndarray]:
    """Distinct strings of ``values`` (sorted by ``key``) and each row's index into them.

    A dict pass, not a sort of the rows: sorting object arrays compares Python
    strings one pair at a time and is many times slower at 100,000 rows.
    """
    first_seen: dict[str, int] = {}
    seen_codes = np.fromiter(
        (first_seen.setdefault(v, len(first_seen)) for v in values),
        dtype=np.int64,
        count=len(values),
    )
    names = sorted(first_seen, key=key)
    rank = np.empty(len(names), dtype=np.int64)
    rank[[first_seen[name] for name in names]] = np.arange(len(names))
    return names, rank[seen_codes]


def _unique_rows(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """First row, inverse and count of every distinct row of an integer matrix ``keys``.

    Distinct rows are numbered in lexicographic order. Columns are folded in one
    at a time and renumbered densely, so the running code stays below ``n``
    (1-D sorts instead of ``np.unique(axis=0)``'s much slower row sort).
    """
    code = np.zeros(len(keys), dtype=np.int64)
    for column in keys.T:
        _, column_code = np.unique(column, return_inverse=True)
        code = code * (int(column_code.max(initial=0)) + 1) + column_code.reshape(-1)
        _, code = np.unique(code, return_inverse=True)
        code = code.reshape(-1)
    _, first, inverse, counts = np.unique(
        code, return_index=True, return_inverse=True, return_counts=True
    )
    return first, inverse.reshape(-1), counts


@dataclass
class AtomView:
    """One level of atoms: representatives, counts, groups, and cached metric maps.

    Attributes:
        inputs: one representative example per atom.
        counts: rows per atom on the data, shape ``(A,)``.
        groups: per attribute, each atom's group index, shape ``(A,)``.
        metrics: the additive metrics computed on this view.
    """

    inputs: MetricInputs
    counts: np.ndarray
    groups: dict[str, np.ndarray]
    metrics: list[AdditiveMetric]
    _stats: dict[str, np.ndarray] = field(default_factory=dict)
    _columns: dict[str, slice] = field(default_factory=dict)
    _maps: dict[str, sparse.csr_array] = field(default_factory=dict)

    def __post_init__(self) -> None:
        start = 0
        for metric in self.metrics:
            k = self.stats(metric).shape[1]
            self._columns[metric.name] = slice(start, start + k)
            start += k

    def stats(self, metric: AdditiveMetric) -> np.ndarray:
        """Per-atom statistics of ``metric``, shape ``(A, k)`` (computed once)."""
        if metric.name not in self._stats:
            self._stats[metric.name] = metric.row_stats(self.inputs)
        return self._stats[metric.name]

    def _group_map(self, attribute: str, n_groups: int) -> sparse.csr_array:
        """``(G*K, A)`` map: atom counts to summed statistics per group (transposed)."""
        if attribute not in self._maps:
            width = sum(s.stop - s.start for s in self._columns.values())
            stats = np.hstack([self.stats(m) for m in self.metrics])
            rows, cols = np.nonzero(stats)
            values = stats[rows, cols]
            cols = cols + width * self.groups[attribute][rows]
            shape = (len(self.counts), n_groups * width)
            by_group = sparse.csr_array((values, (rows, cols)), shape=shape)
            self._maps[attribute] = by_group.T.tocsr()
        return self._maps[attribute]

    def evaluate(self, attribute: str, n_groups: int, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric of this view for every group, under each row of ``counts`` ``(b, A)``.

        Returns:
            ``{metric: values (b, G)}``.
        """
        if not self.metrics:
            return {}
        summed = (self._group_map(attribute, n_groups) @ counts.T).T
        summed = summed.reshape(len(counts), n_groups, -1)
        return {m.name: m.from_stats(summed[..., self._columns[m.name]]) for m in self.metrics}


@dataclass
class AtomTable:
    """The data set as atoms with their counts and group memberships.

    Attributes:
        fine: the resampling atoms (scores included when a metric reads them).
        coarse: atoms of groups and labels only (``fine`` itself when no metric
            reads scores).
        to_coarse: ``(A_fine, A_coarse)`` map summing fine counts into coarse ones.
        atom_of_row: fine atom of every original row, shape ``(n,)``.
        group_names: per attribute, its groups in report order.
        members: per attribute and group, the indices of the group's fine atoms.
        rank_metrics: metrics that rank fine atoms by score.
    """

    fine: AtomView
    coarse: AtomView
    to_coarse: sparse.csr_array | None
    atom_of_row: np.ndarray
    group_names: dict[str, list[str]]
    members: dict[str, list[np.ndarray]]
    rank_metrics: list[RankMetric]
    _rank: dict[str, RankMaps] = field(default_factory=dict)

    @classmethod
    def build(
        cls,
        inputs: MetricInputs,
        sensitive_features: Mapping[str, np.ndarray],
        metrics: Sequence[Metric],
    ) -> AtomTable:
        """Collapse ``inputs`` into atoms.

        Args:
            inputs: every example.
            sensitive_features: per attribute, each row's group name.
            metrics: the metrics to be computed.

        Raises:
            ValueError: an attribute whose length differs from the inputs'.
        """
        n = len(inputs)
        names: dict[str, list[str]] = {}
        row_groups: dict[str, np.ndarray] = {}
        for attribute, values in sensitive_features.items():
            if len(values) != n:
                raise ValueError(f"attribute {attribute!r} has {len(values)} values for {n} rows")
            names[attribute], row_groups[attribute] = factorize(values, key=group_order)
        _, label_code = factorize(np.concatenate([inputs.references, inputs.predictions]))
        coarse_keys = np.column_stack([label_code[:n], label_code[n:], *row_groups.values()])
        additive = [m for m in metrics if isinstance(m, AdditiveMetric)]
        scored = any(m.needs_scores for m in metrics) and inputs.scores is not None
        if scored:
            assert inputs.scores is not None
            # exact float bits: only equal scores share an atom
            fine_keys = np.column_stack([coarse_keys, inputs.scores.view(np.int64)])
        else:
            fine_keys = coarse_keys
        first, atom_of_row, counts = _unique_rows(fine_keys)
        fine = AtomView(
            inputs=inputs.take(first),
            counts=counts.astype(np.float64),
            groups={a: g[first] for a, g in row_groups.items()},
            metrics=[m for m in additive if m.needs_scores or not scored],
        )
        coarse, to_coarse = fine, None
        if scored:
            fine_coarse_keys = coarse_keys[first]
            coarse_first, coarse_of_fine, _ = _unique_rows(fine_coarse_keys)
            coarse = AtomView(
                inputs=fine.inputs.take(coarse_first),
                counts=np.bincount(coarse_of_fine, weights=fine.counts),
                groups={a: g[coarse_first] for a, g in fine.groups.items()},
                metrics=[m for m in additive if not m.needs_scores],
            )
            a_fine = len(first)
            to_coarse = sparse.csr_array(
                (np.ones(a_fine), (np.arange(a_fine), coarse_of_fine)),
                shape=(a_fine, len(coarse_first)),
            )
        members = {
            a: [np.flatnonzero(fine.groups[a] == g) for g in range(len(names[a]))] for a in names
        }
        return cls(
            fine=fine,
            coarse=coarse,
            to_coarse=to_coarse,
            atom_of_row=atom_of_row,
            group_names=names,
            members=members,
            rank_metrics=[m for m in metrics if isinstance(m, RankMetric)],
        )

    def __len__(self) -> int:
        return len(self.fine.counts)

    @property
    def counts(self) -> np.ndarray:
        """Rows per fine atom on the data."""
        return self.fine.counts

    def evaluate(self, attribute: str, counts: np.ndarray) -> dict[str, np.ndarray]:
        """Every metric for every group of ``attribute`` under each row of ``counts``.

        Args:
            attribute: the attribute.
            counts: fine-atom counts, shape ``(b, A_fine)``.

        Returns:
            ``{metric: values (b, G)}``.
        """
        n_groups = len(self.group_names[attribute])
        out = self.fine.evaluate(attribute, n_groups, counts)
        if self.to_coarse is not None:
            coarse_counts = (self.to_coarse.T @ counts.T).T
            out.update(self.coarse.evaluate(attribute, n_groups, coarse_counts))
        if self.rank_metrics:
            to_positive, to_negative, starts = self._rank_maps(attribute)
            positives = (to_positive.T @ counts.T).T
            negatives = (to_negative.T @ counts.T).T
            for metric in self.rank_metrics:
                out[metric.name] = metric.from_ranked(positives, negatives, starts)
        return out

    def _rank_maps(self, attribute: str) -> RankMaps:
        if attribute not in self._rank:
            self._rank[attribute] = rank_maps(self.fine.inputs, self.fine.groups[attribute])
        return self._rank[attribute]

    def evaluate_atoms(self, metric: Metric, atoms: np.ndarray, counts: np.ndarray) -> np.ndarray:
        """``metric`` over a set of fine atoms under each row of ``counts`` ``(b, len(atoms))``."""
        if isinstance(metric, AdditiveMetric):
            return metric.from_stats(counts @ self.fine.stats(metric)[atoms])
        if isinstance(metric, RankMetric):
            to_positive, to_negative, starts = rank_maps(self.fine.inputs.take(atoms))
            positives = (to_positive.T @ counts.T).T
            negatives = (to_negative.T @ counts.T).T
            return metric.from_ranked(positives, negatives, starts)[:, 0]
        raise TypeError(f"unknown metric shape {type(metric).__name__}")

    def group_stats(self, metric: AdditiveMetric, attribute: str, group: int) -> np.ndarray:
        """Summed statistics of ``metric`` over one group's examples, shape ``(k,)``."""
        atoms = self.members[attribute][group]
        return self.fine.counts[atoms] @ self.fine.stats(metric)[atoms]
