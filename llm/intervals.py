"""Confidence intervals of proportions, shared by every report of a rate with its uncertainty."""

from __future__ import annotations

import math

Z_95 = 1.959963984540054  # the normal quantile of a two-sided 95% interval


def wilson_interval(successes: int, n: int, z: float = Z_95) -> tuple[float, float] | None:
    """Wilson score interval of a binomial proportion ``successes / n`` (95% by default).

    Args:
        successes: successes.
        n: trials.
        z: normal quantile (:data:`Z_95` for 95%).

    Returns:
        ``(low, high)`` clipped to [0, 1]; ``None`` when ``n`` is 0.
    """
    if n == 0:
        return None
    p = successes / n
    den = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / den
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / den
    return max(0.0, centre - half), min(1.0, centre + half)
