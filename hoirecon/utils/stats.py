"""Summaries over runs where a value may be missing (NaN: a metric that could not be computed)."""

from __future__ import annotations

import math


def mean_finite(values: list[float]) -> float:
    """The mean of the values that are not NaN; NaN when none is."""
    finite = [v for v in values if not math.isnan(v)]
    return sum(finite) / len(finite) if finite else math.nan
