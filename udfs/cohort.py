"""Cohort maths in SQL: the covariance and principal components ("eigen-images") of many vectors,
such as images resampled to one size, streamed in one pass; projection on and reconstruction
from a PCA model; and the distributed path (per-partition partials, then a merge)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pyarrow as pa

from dicomsql.options import Bound
from dicomsql.stats import pca
from dicomsql.stats.moments import MAX_DIMENSION

from .arrow import Expected, Models, labels
from .registry import ArgumentError, Struct, Table, column, constant, options, sql_function

COMPONENTS = Bound(1, MAX_DIMENSION)
VECTOR_VALUES = Bound(1, MAX_DIMENSION, "values")

COV = Struct(pca.COV_FIELDS, "COV")
PCA_MODEL = Struct(pca.MODEL_FIELDS, "PCA_MODEL")


def vectors(array: pa.Array) -> np.ndarray:
    """A batch of vectors (ARRAY<FLOAT or DOUBLE>) as the rows of a matrix; NULL vectors left out."""
    values = [v for v in labels(array) if v is not None]
    if not values:
        return np.empty((0, 0))
    lengths = {len(v) for v in values}
    if len(lengths) > 1:
        raise Expected(
            "arrays of one length (resample images to one size)", f"lengths {sorted(lengths)[:5]}"
        )
    return np.asarray(values, dtype=np.float64)


def _length(matrix: np.ndarray) -> list[int]:
    """The length of the vectors: a d x d matrix follows."""
    return [matrix.shape[1]] if matrix.size else []


#: cov_fit's vectors: a d x d covariance follows, so d is bounded
VECTORS = column("vector", "ARRAY<DOUBLE>", vectors, bound=VECTOR_VALUES, sizes=_length)


def _covariance(moments: pca.Moments) -> dict[str, Any]:
    if moments.n < 2:
        return {"n": moments.n, "error": "a covariance needs at least 2 vectors"}
    return {"n": moments.n, "mean": moments.mean, "covariance": moments.covariance()}


def _added(add: Callable[[np.ndarray], None], batch: np.ndarray) -> None:
    try:
        add(batch)
    except ValueError as exc:
        raise ArgumentError("vector", str(exc)) from None


@sql_function(
    VECTORS,
    returns=COV,
    kind="aggregate",
    streaming=True,
    example="SELECT Modality, cov_fit(image_resize(path, 8, 8).data).n FROM demo_images WHERE _corrupt_record IS NULL GROUP BY Modality",
)
def cov_fit(batches: Iterator[tuple[np.ndarray]]) -> dict:
    """Mean and sample covariance (n - 1, as ``np.cov``) of the vectors of a group, streamed
    batch by batch (memory O(d^2), never the whole group). One streaming aggregate per
    query: Spark runs a single one of this kind per aggregation."""
    moments = pca.Moments()
    for (vector,) in batches:
        _added(moments.add, vector)
    return _covariance(moments)


@sql_function(
    column("vector", "ARRAY<DOUBLE>", vectors),
    constant("k", "INT", bound=COMPONENTS),
    options(pca.OPTIONS),
    returns=PCA_MODEL,
    kind="aggregate",
    streaming=True,
    example="SELECT pca_fit(image_resize(path, 16, 16).data, 4) FROM demo_images WHERE Modality = 'CT'",
)
def pca_fit(batches: Iterator[tuple[np.ndarray]], k: int, options: dict) -> dict:
    """Principal components of the vectors of a group ("eigen-images" when the vectors are
    resampled images): mean, k components, eigenvalues, explained variance ratio, n, and
    ``method``. Streams batch by batch keeping O(d^2) state (``covariance``); for d above
    ``max_dimension`` it keeps the vectors and uses the Gram matrix (n <= d) or a randomized
    SVD (n > d, approximate)."""
    accumulator = pca.PcaAccumulator(k, options)
    for (vector,) in batches:
        _added(accumulator.add, vector)
    try:
        return accumulator.model()
    except ValueError as exc:
        return {"n": accumulator.moments.n, "error": str(exc)}


def _model_rows(
    model: Models,
    vector: list,
    transform: Callable[[dict, np.ndarray], Any],
    argument: str = "vector",
) -> list:
    out: list[Any] = [None] * len(vector)
    for fitted, where in model:
        rows = [i for i in where if vector[i] is not None]
        if fitted.get("error") or fitted.get("components") is None or not rows:
            continue
        try:
            results = transform(fitted, np.asarray([vector[i] for i in rows], dtype=np.float64))
        except ValueError as exc:
            raise ArgumentError(argument, str(exc)) from None
        for i, result in zip(rows, results):
            out[i] = result
    return out


@sql_function(
    column("model", PCA_MODEL, Models),
    column("vector", "ARRAY<DOUBLE>", labels),
    returns="ARRAY<DOUBLE>",
    example="SELECT pca_project(m.model, image_resize(i.path, 16, 16).data) FROM demo_images i "
    "CROSS JOIN (SELECT pca_fit(image_resize(path, 16, 16).data, 4) AS model FROM demo_images WHERE Modality = 'CT') m "
    "WHERE i.Modality = 'CT' LIMIT 3",
)
def pca_project(model: Models, vector: list) -> list:
    """The scores of a vector on a ``pca_fit`` model's components: (vector - mean) .
    components."""
    return _model_rows(model, vector, pca.project)


@sql_function(
    column("model", PCA_MODEL, Models),
    column("scores", "ARRAY<DOUBLE>", labels),
    returns="ARRAY<DOUBLE>",
    example="SELECT pca_reconstruct(m.model, array(1.0, 0.0)) FROM "
    "(SELECT pca_fit(image_resize(path, 16, 16).data, 2) AS model FROM demo_images WHERE Modality = 'CT') m",
)
def pca_reconstruct(model: Models, scores: list) -> list:
    """A vector back from its scores on a ``pca_fit`` model: mean + scores . components
    (the first len(scores) components)."""
    return _model_rows(model, scores, pca.reconstruct, "scores")


def _first_column(row: Any) -> Any:
    return row[0]


@sql_function(
    column(
        "vectors",
        "TABLE whose first column is ARRAY<DOUBLE>",
        _first_column,
        bound=VECTOR_VALUES,
        sizes=lambda vector: [] if vector is None else [len(vector)],
    ),
    returns=Table(pca.PARTIAL_FIELDS),
    kind="table",
    example="SELECT cov_merge(n, mean, scatter).n FROM cov_partials(TABLE(SELECT image_resize(path, 8, 8).data FROM demo_images))",
    name="cov_partials",
)
class CovPartials:
    """The distributed one-pass path: one row per input partition with that partition's
    count, mean and scatter matrix (no shuffle of the vectors), for ``cov_merge``. Use it
    for large cohorts: every partition is summed in parallel, only d x d partials move.
    ``cov_fit``/``pca_fit`` instead stream a whole group through one worker."""

    def __init__(self) -> None:
        self.moments = pca.Moments()
        self.pending: list[list[float]] = []

    def _flush(self) -> None:
        if self.pending:
            self.moments.add(np.asarray(self.pending, dtype=np.float64))
            self.pending = []

    def eval(self, vectors: list[float] | None) -> Iterator[tuple]:
        if vectors is not None:
            self.pending.append(vectors)
            if len(self.pending) >= 256:
                self._flush()
        return iter(())

    def terminate(self) -> Iterator[tuple]:
        self._flush()
        if self.moments.n:
            yield self.moments.n, self.moments.mean.tolist(), self.moments.scatter.tolist()


@sql_function(
    column("n", "BIGINT", labels),
    column("mean", "ARRAY<DOUBLE>", labels),
    column("scatter", "ARRAY<ARRAY<DOUBLE>>", labels),
    returns=COV,
    kind="aggregate",
    example="SELECT cov_merge(n, mean, scatter) FROM cov_partials(TABLE(SELECT image_resize(path, 8, 8).data FROM demo_images))",
)
def cov_merge(n: list, mean: list, scatter: list) -> dict:
    """Merge ``cov_partials`` rows into the mean and covariance of all vectors (the same
    result as ``cov_fit``)."""
    moments = pca.Moments()
    for count, centre, matrix in zip(n, mean, scatter):
        if count:
            moments.merge(pca.Moments(count, np.asarray(centre), np.asarray(matrix)))
    return _covariance(moments)


@sql_function(
    column("covariance", COV, labels),
    constant("k", "INT", bound=COMPONENTS),
    returns=PCA_MODEL,
    example="SELECT pca_from_cov(c, 3).explained_variance_ratio FROM (SELECT cov_merge(n, mean, scatter) AS c "
    "FROM cov_partials(TABLE(SELECT image_resize(path, 8, 8).data FROM demo_images)))",
)
def pca_from_cov(covariance: list, k: int) -> list:
    """A ``pca_fit`` model from a ``cov_fit`` or ``cov_merge`` result."""
    out: list[dict | None] = []
    for row in covariance:
        if row is None or row.get("covariance") is None:
            out.append(None if row is None else {"n": row.get("n"), "error": row.get("error")})
            continue
        matrix = np.asarray(row["covariance"], dtype=np.float64)
        moments = pca.Moments(row["n"], np.asarray(row["mean"]), matrix * (row["n"] - 1))
        out.append(pca.from_moments(moments, min(k, len(matrix))))
    return out
