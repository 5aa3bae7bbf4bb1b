"""Bootstrap resampling expressed as counts, and percentile intervals.

A bootstrap resample draws ``n`` rows with replacement from the ``n`` rows of
the whole data set. Rows that agree on everything a metric reads (their group
in every attribute, their reference and prediction, their score) are
interchangeable, so the engine collapses them into *atoms* and a resample is
fully described by how many times each atom was drawn. Those counts follow
``Multinomial(n, n_atom / n)``, which is what :func:`resample_counts` draws,
``chunk`` resamples at a time, without ever materialising resampled rows.
Because the whole data set is resampled at once (not each group on its own),
group sizes vary from resample to resample as they would in a new sample of
patients, and every group and every disparity within one resample comes from
the same draw: the intervals of disparities account for both groups moving.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

# Above this many atoms per row a row-index draw beats the multinomial's
# sequential binomials (O(atoms) per resample); both give the same distribution.
_INDEX_DRAW_ATOM_SHARE = 0.125


def resample_counts(
    atom_counts: np.ndarray,
    atom_of_row: np.ndarray,
    *,
    n_boot: int,
    rng: np.random.Generator,
    chunk: int,
) -> Iterator[np.ndarray]:
    """Yield bootstrap counts per atom, ``chunk`` resamples at a time.

    Args:
        atom_counts: how many rows each atom holds, shape ``(A,)``; sums to ``n``.
        atom_of_row: the atom of every row, shape ``(n,)``.
        n_boot: total number of resamples.
        rng: the seeded generator; the same seed yields the same counts.
        chunk: resamples per yielded block (bounds memory at ``chunk * A``).

    Yields:
        float64 arrays of shape ``(b, A)``, ``b <= chunk``, each row summing to ``n``.
    """
    n = int(atom_counts.sum())
    n_atoms = len(atom_counts)
    by_index = n_atoms > _INDEX_DRAW_ATOM_SHARE * n
    probabilities = atom_counts / n
    done = 0
    while done < n_boot:
        b = min(chunk, n_boot - done)
        if by_index:
            rows = rng.integers(0, n, size=(b, n))
            flat = atom_of_row[rows] + (np.arange(b) * n_atoms)[:, None]
            counts = np.bincount(flat.ravel(), minlength=b * n_atoms).reshape(b, n_atoms)
        else:
            counts = rng.multinomial(n, probabilities, size=b)
        done += b
        yield counts.astype(np.float64)


def chunk_size(n_atoms: int, *, budget: int = 2_000_000, most: int = 100) -> int:
    """Resamples per block so that a block holds about ``budget`` counts."""
    return max(1, min(most, budget // max(n_atoms, 1)))


def percentile_ci(samples: np.ndarray, confidence: float) -> tuple[np.ndarray, np.ndarray]:
    """Percentile bootstrap interval over axis 0, ignoring undefined (NaN) resamples.

    Args:
        samples: bootstrap values, shape ``(B, ...)``.
        confidence: coverage, e.g. 0.95 gives the 2.5 % and 97.5 % quantiles.

    Returns:
        ``(lower, upper)``, each of shape ``samples.shape[1:]``; NaN where every
        resample was undefined.
    """
    alpha = 1.0 - confidence
    finite = ~np.isnan(samples)
    lower = np.full(samples.shape[1:], np.nan)
    upper = np.full(samples.shape[1:], np.nan)
    if samples.shape[0] == 0:
        return lower, upper
    some = finite.any(axis=0)
    if some.all():
        q = np.nanquantile(samples, [alpha / 2, 1 - alpha / 2], axis=0)
        return q[0], q[1]
    # nanquantile warns on all-NaN columns: compute only the defined ones
    flat = samples.reshape(samples.shape[0], -1)
    cols = np.flatnonzero(some.ravel())
    if len(cols):
        q = np.nanquantile(flat[:, cols], [alpha / 2, 1 - alpha / 2], axis=0)
        lower.ravel()[cols] = q[0]
        upper.ravel()[cols] = q[1]
    return lower, upper
