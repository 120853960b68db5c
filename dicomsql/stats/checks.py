"""Checks of survival data shared by the fits: a reason when a group cannot be fitted."""

from __future__ import annotations

from typing import Sequence

import pandas as pd

__all__ = ["survival_problem"]


def survival_problem(table: pd.DataFrame, duration: str, event: str, names: Sequence[str], *,
                     positive: bool = False, weight: str | None = None) -> str | None:
    """Why ``table`` cannot be fitted (None when it can): no rows, negative (or, with
    ``positive``, zero) durations, events other than 0/1, no events, bad weights, or a
    covariate without variation."""
    if table.empty:
        return "no complete rows"
    bad = table[duration] <= 0 if positive else table[duration] < 0
    if bad.any():
        return f"{'non-positive' if positive else 'negative'} durations in {int(bad.sum())} row(s); durations must be {'> 0' if positive else '>= 0'}"
    if not set(table[event].unique()) <= {0.0, 1.0}:
        return "event must be 0/1 or boolean"
    if table[event].sum() == 0:
        return "no events: every row is censored"
    if weight is not None and (table[weight] <= 0).any():
        return "weights must be positive"
    constant = [name for name in names if table[name].nunique() <= 1]
    if constant:
        return f"constant covariate(s) {', '.join(constant)}: their effect cannot be estimated"
    return None
