"""Cox partial likelihood terms from rows in descending time order, chunk by chunk.

The risk set of a time holds every row with that time or later, so a pass over the rows in
descending time keeps running sums and needs nothing else: a range of times (a Spark
partition of a time-sorted table) is summed exactly once it knows the sums of every later
row (:class:`RiskSums`, the ``offset``). That is how a Cox model is fitted across partitions
(:mod:`dicomsql.distributed`): per Newton step, one pass for each partition's totals, one for
its terms given the totals of the partitions before it; the terms then add up.

Rows come as :data:`Chunk` tuples ``(time, event, weight, x)``: times descending within a
chunk and from one chunk to the next; rows of one time may span chunks (they are held back
until the time is complete). Ties are Efron's or Breslow's, with case weights as lifelines
handles them (a tie group's deaths count with their mean weight in Efron's correction).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import astuple, dataclass

import numpy as np

__all__ = ["Chunk", "RiskSums", "Terms", "totals", "terms", "baseline_hazard"]

#: ``(time, event, weight, x)``: 1-d arrays of n and an n x p matrix.
Chunk = tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]


class _Sums:
    """A number, a p-vector and a p x p matrix that add up field by field."""

    @classmethod
    def zero(cls, p: int):
        return cls(0.0, np.zeros(p), np.zeros((p, p)))

    def __add__(self, other):
        return type(self)(*(a + b for a, b in zip(astuple(self), astuple(other), strict=True)))


@dataclass(frozen=True)
class RiskSums(_Sums):
    """Sums over a set of rows of ``w exp(x.beta)`` times 1, x and x x'."""

    s0: float
    s1: np.ndarray
    s2: np.ndarray

    @classmethod
    def of(cls, x: np.ndarray, score: np.ndarray) -> RiskSums:
        """The sums of rows ``x`` with scores ``w exp(x.beta)``."""
        return cls(float(score.sum()), score @ x, (x * score[:, None]).T @ x)


@dataclass(frozen=True)
class Terms(_Sums):
    """Partial log-likelihood, gradient and Hessian (in beta) of a set of tie groups."""

    loglik: float
    gradient: np.ndarray
    hessian: np.ndarray


def totals(chunks: Iterable[Chunk], beta: np.ndarray) -> RiskSums:
    """The risk sums of every row of ``chunks`` (in any order)."""
    beta = np.asarray(beta, dtype=float)
    result = RiskSums.zero(len(beta))
    for _, _, weight, x in chunks:
        result = result + RiskSums.of(x, weight * np.exp(x @ beta))
    return result


def terms(
    chunks: Iterable[Chunk], beta: np.ndarray, offset: RiskSums | None = None, ties: str = "efron"
) -> Terms:
    """The partial likelihood terms of the tie groups in ``chunks`` (descending time),
    ``offset`` holding the risk sums of every row with a later time."""
    beta = np.asarray(beta, dtype=float)
    result = Terms.zero(len(beta))
    risk = offset if offset is not None else RiskSums.zero(len(beta))
    for block in _whole_times(chunks):
        block_terms, risk = _block_terms(block, beta, risk, ties)
        result = result + block_terms
    return result


def baseline_hazard(
    chunks: Iterable[Chunk], beta: np.ndarray, offset: RiskSums | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Breslow's baseline hazard increments: every distinct time of ``chunks`` (descending)
    and its weighted deaths over the risk sum ``w exp(x.beta)`` (cumulated, ascending, they
    are the baseline cumulative hazard)."""
    beta = np.asarray(beta, dtype=float)
    s0 = offset.s0 if offset is not None else 0.0
    times, increments = [], []
    for time, event, weight, x in _whole_times(chunks):
        first, group = _groups(time)
        at_risk = s0 + np.cumsum(weight * np.exp(x @ beta))
        last = np.r_[first[1:], len(time)] - 1
        times.append(time[first])
        increments.append(np.bincount(group, weight * event) / at_risk[last])
        s0 = float(at_risk[-1])
    if not times:
        return np.zeros(0), np.zeros(0)
    return np.concatenate(times), np.concatenate(increments)


def _groups(time: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first row of each run of equal times, and each row's run."""
    first = np.r_[0, np.flatnonzero(np.diff(time) != 0) + 1]
    group = np.zeros(len(time), dtype=int)
    group[first[1:]] = 1
    return first, np.cumsum(group)


def _whole_times(chunks: Iterable[Chunk]) -> Iterator[Chunk]:
    """The chunks re-cut so that no time spans two of them (the rows of the last time of a
    chunk wait for the next chunk)."""
    held: Chunk | None = None
    for chunk in chunks:
        if held is not None:
            chunk = tuple(np.concatenate([a, b]) for a, b in zip(held, chunk, strict=True))
        time = chunk[0]
        if not len(time):
            held = None
            continue
        cut = int(np.searchsorted(-time, -time[-1], side="left"))
        held = tuple(a[cut:] for a in chunk)
        if cut:
            yield tuple(a[:cut] for a in chunk)
    if held is not None and len(held[0]):
        yield held


def _block_terms(
    block: Chunk, beta: np.ndarray, risk: RiskSums, ties: str
) -> tuple[Terms, RiskSums]:
    """The terms of a block of whole tie groups (descending time) and the risk sums after it.

    Efron's correction gives the ``k``-th of a group's ``m`` deaths the risk set less ``k/m``
    of the group's deaths (Breslow: none less); every death counts with the group's mean
    death weight (as lifelines). The second moments are summed as weighted x'x products,
    never per time.
    """
    time, event, weight, x = block
    dead = event > 0
    score = weight * np.exp(x @ beta)
    first, group = _groups(time)
    last = np.r_[first[1:], len(time)] - 1
    n_groups = len(first)

    r0 = (risk.s0 + np.cumsum(score))[last]
    r1 = (risk.s1 + np.cumsum(score[:, None] * x, axis=0))[last]
    deaths = np.bincount(group, dead, n_groups).astype(int)
    mean_weight = np.divide(
        np.bincount(group, weight * dead, n_groups),
        deaths,
        out=np.zeros(n_groups),
        where=deaths > 0,
    )
    tie0 = np.bincount(group, score * dead, n_groups)
    tie1 = np.zeros((n_groups, x.shape[1]))
    np.add.at(tie1, group[dead], (score * dead)[dead, None] * x[dead])
    x_deaths = (weight * dead) @ x

    # one slot per death: its group, and the share of the group's deaths taken from the risk set
    slot = np.repeat(np.arange(n_groups), deaths)
    if ties == "efron":
        rank = np.arange(len(slot)) - np.repeat(np.cumsum(deaths) - deaths, deaths)
        share = rank / deaths[slot]
    else:
        share = np.zeros(len(slot))
    inverse = 1.0 / (r0[slot] - share * tie0[slot])
    numerator = r1[slot] - share[:, None] * tie1[slot]
    factor = mean_weight[slot]
    mean_x = numerator * inverse[:, None]

    # sum over groups of c_g r2_g (r2_g: the offset plus rows up to the group's end) and of
    # c'_g tie2_g, as x' diag(.) x with per-row weights
    c_risk = factor * inverse
    c_tie = factor * share * inverse
    per_group_risk = np.bincount(slot, c_risk, n_groups)
    per_group_tie = np.bincount(slot, c_tie, n_groups)
    from_here = np.cumsum(per_group_risk[::-1])[::-1]  # groups at this row's time or earlier
    row_weight = score * from_here[group] - score * dead * per_group_tie[group]
    second = per_group_risk.sum() * risk.s2 + (x * row_weight[:, None]).T @ x

    result = Terms(
        loglik=float(x_deaths @ beta + np.sum(factor * np.log(inverse))),
        gradient=x_deaths - (factor[:, None] * mean_x).sum(axis=0),
        hessian=(mean_x * factor[:, None]).T @ mean_x - second,
    )
    return result, risk + RiskSums.of(x, score)
