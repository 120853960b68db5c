"""Checks of survival data shared by the fits: a reason when a group cannot be fitted."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["survival_problem"]


def survival_problem(
    durations: np.ndarray,
    events: np.ndarray,
    features: Mapping[str, np.ndarray] | None = None,
    *,
    positive: bool = False,
    weights: np.ndarray | None = None,
    need_events: bool = True,
) -> str | None:
    """Why complete survival data cannot be fitted (None when they can): no rows, negative
    (or, with ``positive``, zero) durations, events other than 0/1, no events (unless
    ``need_events`` is false: a Kaplan-Meier curve can be all censored), bad weights, or a
    feature column without variation.

    >>> survival_problem(np.array([1.0, 2.0]), np.array([1.0, 0.0]), {"x": np.array([3.0, 3.0])})
    'constant feature(s) x: their effect cannot be estimated'
    """
    durations, events = np.asarray(durations, dtype=float), np.asarray(events, dtype=float)
    if len(durations) == 0:
        return "no complete rows"
    bad = durations <= 0 if positive else durations < 0
    if bad.any():
        return f"{'non-positive' if positive else 'negative'} durations in {int(bad.sum())} row(s); durations must be {'> 0' if positive else '>= 0'}"
    if not set(np.unique(events)) <= {0.0, 1.0}:
        return "event must be 0/1 or boolean"
    if need_events and events.sum() == 0:
        return "no events: every row is censored"
    if weights is not None and (np.asarray(weights, dtype=float) <= 0).any():
        return "weights must be positive"
    constant = [name for name, values in (features or {}).items() if len(np.unique(values)) <= 1]
    if constant:
        return f"constant feature(s) {', '.join(constant)}: their effect cannot be estimated"
    return None
