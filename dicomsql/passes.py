"""What a distributed Cox fit (:func:`dicomsql.distributed.coxph_fit`) runs on each
partition: Arrow batches in, a few numbers out, with numpy, pyarrow and
:mod:`dicomsql.stats.riskset` only.

A Python worker unpickling one of these functions imports this module and nothing heavier:
not scipy (the models' p-values) or the server, which :mod:`dicomsql.distributed` and
``dicomsql`` import on the driver. Its address space, which ``spark.executor.pyspark.memory``
limits, is then about 300 MiB plus an Arrow batch, not 550 MiB (measured).

A partition holds the rows of a range of times, sorted by descending time, with the columns
:data:`TIME`, :data:`EVENT`, :data:`WEIGHT`, ``x0``... (standardised features) and
:data:`PART` (its partition number).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping

import numpy as np
import pyarrow as pa

from .stats import riskset

__all__ = [
    "EVENT",
    "PART",
    "TIME",
    "WEIGHT",
    "cox_baseline",
    "cox_scores",
    "cox_terms",
    "cox_totals",
]

#: The prepared rows' columns: duration, event (0/1), case weight, and partition number.
TIME, EVENT, WEIGHT, PART = "t", "e", "w", "part"


def _partition(
    batches: Iterable[pa.RecordBatch], p: int
) -> tuple[int, Iterator[riskset.Chunk]] | None:
    """A partition's number and its Arrow batches as chunks; None for an empty partition."""
    batches = (batch for batch in batches if batch.num_rows)
    first = next(batches, None)
    if first is None:
        return None

    def chunks() -> Iterator[riskset.Chunk]:
        for batch in itertools.chain([first], batches):
            columns = [batch.column(name).to_numpy() for name in (TIME, EVENT, WEIGHT)]
            x = np.column_stack([batch.column(f"x{i}").to_numpy() for i in range(p)])
            yield (*columns, x)

    return int(first.column(PART)[0].as_py()), chunks()


def cox_totals(batches: Iterator[pa.RecordBatch], beta: np.ndarray) -> Iterator[pa.RecordBatch]:
    """The partition's number and its risk-set sums at ``beta``
    (:func:`~dicomsql.stats.riskset.totals`)."""
    partition = _partition(batches, len(beta))
    if partition is not None:
        part, chunks = partition
        total = riskset.totals(chunks, beta)
        yield pa.RecordBatch.from_pydict(
            {
                "part": [part],
                "s0": [total.s0],
                "s1": [total.s1.tolist()],
                "s2": [total.s2.ravel().tolist()],
            }
        )


def cox_terms(
    batches: Iterator[pa.RecordBatch],
    beta: np.ndarray,
    offsets: Mapping[int, riskset.RiskSums],
    ties: str,
) -> Iterator[pa.RecordBatch]:
    """The partition's log-likelihood, gradient and Hessian at ``beta``, given ``offsets`` (per
    partition number, the risk sums of the partitions of later times) and ``ties``."""
    partition = _partition(batches, len(beta))
    if partition is not None:
        part, chunks = partition
        result = riskset.terms(chunks, beta, offsets[part], ties)
        yield pa.RecordBatch.from_pydict(
            {
                "loglik": [result.loglik],
                "gradient": [result.gradient.tolist()],
                "hessian": [result.hessian.ravel().tolist()],
            }
        )


def cox_baseline(
    batches: Iterator[pa.RecordBatch], beta: np.ndarray, offsets: Mapping[int, riskset.RiskSums]
) -> Iterator[pa.RecordBatch]:
    """The partition's event times and baseline hazard increments at ``beta``."""
    partition = _partition(batches, len(beta))
    if partition is not None:
        part, chunks = partition
        times, increments = riskset.baseline_hazard(chunks, beta, offsets[part])
        yield pa.RecordBatch.from_pydict({"time": times, "increment": increments})


def cox_scores(batches: Iterator[pa.RecordBatch], beta: np.ndarray):
    """Each row's time, event and linear predictor ``x @ beta`` (for the concordance)."""
    partition = _partition(batches, len(beta))
    for time, event, _, x in partition[1] if partition is not None else ():
        yield pa.RecordBatch.from_pydict({"time": time, "event": event, "score": x @ beta})
