"""Rates with 95 % Wilson intervals and means with normal-approximation intervals (pure; no Django)."""

from __future__ import annotations

import math

Z95 = 1.959963984540054

def wilson_interval(k: int, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson score interval for ``k`` successes in ``n`` trials (``(0, 1)`` when ``n`` is 0).

    >>> tuple(round(x, 3) for x in wilson_interval(8, 10))
    (0.49, 0.943)
    """
    if n <= 0:
        return 0.0, 1.0
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    low = 0.0 if k <= 0 else max(0.0, centre - half)
    high = 1.0 if k >= n else min(1.0, centre + half)
    return low, high


def rate(k: int, n: int) -> dict:
    low, high = wilson_interval(k, n)
    return {"k": k, "n": n, "rate": (k / n) if n else None, "low": low, "high": high}


def mean_interval(values: list[float], z: float = Z95) -> dict:
    """Mean with a normal-approximation 95 % interval."""
    n = len(values)
    if not n:
        return {"n": 0, "mean": None, "low": None, "high": None}
    mean = sum(values) / n
    if n == 1:
        return {"n": 1, "mean": mean, "low": mean, "high": mean}
    var = sum((v - mean) ** 2 for v in values) / (n - 1)
    half = z * math.sqrt(var / n)
    return {"n": n, "mean": mean, "low": mean - half, "high": mean + half}
