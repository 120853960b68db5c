"""Inference shared by the regression models: Wald statistics, p-values and intervals, and
the checks that say why a design matrix cannot be fitted."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from scipy import stats as scipy_stats

__all__ = ["wald", "design_problem"]


def wald(
    coef: np.ndarray, se: np.ndarray, alpha: float, df: float | None = None
) -> tuple[np.ndarray, ...]:
    """``(statistic, p, ci_lower, ci_upper)`` of estimates with standard errors ``se``:
    z statistics and the normal distribution, or t statistics with ``df`` degrees of freedom."""
    coef, se = np.asarray(coef, dtype=float), np.asarray(se, dtype=float)
    statistic = coef / se
    distribution = scipy_stats.norm if df is None else scipy_stats.t(df)
    p = 2 * distribution.sf(np.abs(statistic))
    half_width = distribution.ppf(1 - alpha / 2) * se
    return statistic, p, coef - half_width, coef + half_width


def design_problem(scatter: np.ndarray, names: Sequence[str], centred: bool = True) -> str | None:
    """Why features whose scatter matrix is ``scatter`` cannot be fitted, or None when they
    can: constant features (all zero ones when ``scatter`` is the uncentred ``X'X`` of a fit
    without intercept), or features that are linear combinations of others, naming them."""
    if len(names) == 0:
        return None
    spread = np.sqrt(np.clip(np.diag(scatter), 0, None))
    flat = [name for name, value in zip(names, spread) if value <= 1e-12 * max(1.0, spread.max())]
    if flat:
        what = "constant" if centred else "all-zero"
        return f"{what} feature(s) {', '.join(flat)}: their effect cannot be estimated"
    correlation = scatter / np.outer(spread, spread)
    values, vectors = np.linalg.eigh(correlation)
    if values[0] <= 1e-10 * max(values[-1], 1.0):
        involved = [name for name, weight in zip(names, vectors[:, 0]) if abs(weight) > 0.1]
        return (
            f"collinear features {', '.join(involved)}: one is a linear combination of the others"
        )
    return None
