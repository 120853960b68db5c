"""Cox terms summed over time ranges and chunks equal lifelines' and the one-worker fit's."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from lifelines.fitters.coxph_fitter import SemiParametricPHFitter

from dicomsql.stats import riskset


@pytest.fixture
def tied_rows():
    rng = np.random.default_rng(1)
    n, p = 3000, 4
    x = rng.normal(size=(n, p))
    time = rng.integers(1, 60, n).astype(float)  # many ties
    event = (rng.random(n) < 0.7).astype(float)
    weight = rng.uniform(0.5, 2, n)
    return x, time, event, weight, rng.normal(size=p) * 0.3


def _ranges(time, event, weight, x, rng):
    """The rows in descending time cut into time ranges, each in random chunks."""
    order = np.argsort(-time, kind="stable")
    rows = (time[order], event[order], weight[order], x[order])
    sorted_time = rows[0]
    bounds = [0, *(int(np.searchsorted(-sorted_time, -sorted_time[c])) for c in (700, 1500, 2200))]
    bounds.append(len(sorted_time))
    for start, end in zip(bounds, bounds[1:]):
        cuts = np.unique(np.r_[start, rng.integers(start, end, 12), end])
        yield [tuple(a[a0:a1] for a in rows) for a0, a1 in zip(cuts, cuts[1:])]


def test_terms_across_ranges_equal_lifelines_efron(tied_rows):
    x, time, event, weight, beta = tied_rows
    ascending = np.argsort(time, kind="stable")
    hessian, gradient, loglik = SemiParametricPHFitter()._get_efron_values_single(
        pd.DataFrame(x[ascending]),
        pd.Series(time[ascending]),
        pd.Series(event[ascending].astype(bool)),
        pd.Series(weight[ascending]),
        None,
        beta,
    )
    total, offset = riskset.Terms.zero(len(beta)), riskset.RiskSums.zero(len(beta))
    for chunks in _ranges(time, event, weight, x, np.random.default_rng(2)):
        total = total + riskset.terms(chunks, beta, offset)
        offset = offset + riskset.totals(chunks, beta)
    assert total.loglik == pytest.approx(loglik, rel=1e-12)
    np.testing.assert_allclose(total.gradient, gradient, rtol=1e-10, atol=1e-9)
    np.testing.assert_allclose(total.hessian, hessian, rtol=1e-10, atol=1e-9)


def test_breslow_terms_do_not_depend_on_the_cut(tied_rows):
    x, time, event, weight, beta = tied_rows
    order = np.argsort(-time, kind="stable")
    whole = riskset.terms(
        [(time[order], event[order], weight[order], x[order])], beta, ties="breslow"
    )
    total, offset = riskset.Terms.zero(len(beta)), riskset.RiskSums.zero(len(beta))
    for chunks in _ranges(time, event, weight, x, np.random.default_rng(3)):
        total = total + riskset.terms(chunks, beta, offset, ties="breslow")
        offset = offset + riskset.totals(chunks, beta)
    assert total.loglik == pytest.approx(whole.loglik, rel=1e-12)
    np.testing.assert_allclose(total.hessian, whole.hessian, rtol=1e-10)
    assert whole.loglik != pytest.approx(
        riskset.terms([(time[order], event[order], weight[order], x[order])], beta).loglik
    )
