"""Cohort-level covariance and PCA over many vectors (e.g. images resampled to one size),
streamed: only the count, the mean and the scatter matrix are kept (O(d^2) memory), updated
batch by batch with the pairwise formulas of Chan, Golub and LeVeque, so partial results of
different partitions merge exactly.

When d is too large for a d x d matrix (``max_dimension``), the vectors are kept instead and
the components come from the n x n Gram matrix (n <= d) or a randomized SVD (n > d); the
model's ``method`` says which.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ..options import SEED, Option, choice, integer, parse
from .images import orient
from .moments import MAX_DIMENSION, Moments

__all__ = [
    "Moments",
    "COV_FIELDS",
    "MODEL_FIELDS",
    "OPTIONS",
    "PcaAccumulator",
    "from_moments",
    "project",
    "reconstruct",
]

COV_FIELDS: tuple[tuple[str, str], ...] = (
    ("n", "bigint"),
    ("mean", "array<double>"),
    ("covariance", "array<array<double>>"),
    ("error", "string"),
)
#: what a partition hands to the merge: the scatter matrix rather than the covariance
PARTIAL_FIELDS: tuple[tuple[str, str], ...] = (
    ("n", "bigint"),
    ("mean", "array<double>"),
    ("scatter", "array<array<double>>"),
)
MODEL_FIELDS: tuple[tuple[str, str], ...] = (
    ("n", "bigint"),
    ("dimension", "bigint"),
    ("method", "string"),
    ("mean", "array<double>"),
    ("components", "array<array<double>>"),
    ("eigenvalues", "array<double>"),
    ("explained_variance_ratio", "array<double>"),
    ("total_variance", "double"),
    ("error", "string"),
)
OPTIONS: tuple[Option, ...] = (
    Option(
        "max_dimension",
        4096,
        "Largest d for which the d x d covariance is accumulated.",
        integer(1, MAX_DIMENSION),
    ),
    Option(
        "method",
        "auto",
        "How the components are found.",
        choice("auto", "covariance", "gram", "randomized"),
    ),
    Option("seed", 0, "Seed of the randomized SVD.", SEED),
)


def _model(
    n: int,
    dimension: int,
    method: str,
    mean: np.ndarray,
    components: np.ndarray,
    eigenvalues: np.ndarray,
    total_variance: float,
) -> dict[str, Any]:
    components = orient(components)
    ratio = eigenvalues / total_variance if total_variance > 0 else np.zeros_like(eigenvalues)
    return {
        "n": n,
        "dimension": dimension,
        "method": method,
        "mean": mean,
        "components": components,
        "eigenvalues": eigenvalues,
        "explained_variance_ratio": ratio,
        "total_variance": total_variance,
        "error": None,
    }


def from_moments(moments: Moments, k: int) -> dict[str, Any]:
    """The first ``k`` principal components from accumulated moments (the k largest
    eigenpairs of the covariance, found without decomposing all of it)."""
    from scipy.linalg import eigh

    covariance = moments.covariance()
    d = len(covariance)
    values, vectors = eigh(
        covariance, subset_by_index=[d - k, d - 1]
    )  # only the k largest: O(d^2 k)
    order = np.argsort(values)[::-1]
    return _model(
        moments.n,
        len(moments.mean),
        "covariance",
        moments.mean,
        vectors[:, order].T,
        np.clip(values[order], 0, None),
        float(np.trace(covariance)),
    )


def _from_vectors(vectors: np.ndarray, k: int, method: str, seed: int) -> dict[str, Any]:
    n, d = vectors.shape
    mean = vectors.mean(axis=0)
    centred = vectors - mean
    total = float(np.sum(centred**2) / (n - 1))
    if method == "gram":  # eigenvectors of X X^T (n x n) give those of X^T X
        values, left = np.linalg.eigh(centred @ centred.T)
        order = np.argsort(values)[::-1][:k]
        values, left = np.clip(values[order], 0, None), left[:, order]
        components = (centred.T @ left / np.sqrt(np.where(values > 0, values, 1.0))).T
        return _model(n, d, "gram", mean, components, values / (n - 1), total)
    rng = np.random.default_rng(
        seed
    )  # randomized SVD (Halko, Martinsson, Tropp), 2 power iterations
    sketch = centred @ rng.normal(size=(d, min(d, k + 10)))
    for _ in range(2):
        sketch = centred @ (centred.T @ np.linalg.qr(sketch)[0])
    basis = np.linalg.qr(sketch)[0]
    _, singular, rows = np.linalg.svd(basis.T @ centred, full_matrices=False)
    return _model(n, d, "randomized", mean, rows[:k], singular[:k] ** 2 / (n - 1), total)


@dataclass
class PcaAccumulator:
    """Streams vectors in; keeps moments while d <= max_dimension, else the vectors."""

    k: int
    options: dict[str, Any] = field(default_factory=lambda: parse(None, OPTIONS))
    moments: Moments = field(default_factory=Moments)
    kept: list[np.ndarray] = field(default_factory=list)

    @classmethod
    def create(cls, k: int, options: dict[str, str] | None) -> PcaAccumulator:
        if k < 1:
            raise ValueError(f"k must be >= 1, got {k}")
        return cls(k, parse(options, OPTIONS))

    def _streams(self, dimension: int) -> bool:
        method, largest = self.options["method"], self.options["max_dimension"]
        if method == "covariance" and dimension > largest:
            raise ValueError(
                f"method covariance accumulates a d x d matrix: vectors must have at most "
                f"max_dimension ({largest}) values, got {dimension}"
            )
        return method == "covariance" or (method == "auto" and dimension <= largest)

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors) == 0:
            return
        if self._streams(vectors.shape[1]):
            self.moments.add(vectors)
        else:
            self.kept.append(np.asarray(vectors, dtype=np.float64))

    def model(self) -> dict[str, Any]:
        if self.kept:
            vectors = np.concatenate(self.kept)
            n, d = vectors.shape
            if n < 2:
                raise ValueError("PCA needs at least 2 vectors")
            method = self.options["method"]
            if method == "auto":
                method = "gram" if n <= d else "randomized"
            return _from_vectors(vectors, min(self.k, n, d), method, self.options["seed"])
        if self.moments.n < 2:
            raise ValueError("PCA needs at least 2 vectors")
        return from_moments(self.moments, min(self.k, len(self.moments.mean)))


def project(model: dict[str, Any], vectors: np.ndarray) -> np.ndarray:
    """Scores of ``vectors`` (rows) on the model's components."""
    return (np.asarray(vectors, dtype=np.float64) - np.asarray(model["mean"])) @ np.asarray(
        model["components"]
    ).T


def reconstruct(model: dict[str, Any], scores: np.ndarray) -> np.ndarray:
    """Vectors back from their scores: mean + scores . components."""
    components = np.asarray(model["components"])
    return (
        np.asarray(model["mean"])
        + np.asarray(scores, dtype=np.float64)[:, : len(components)] @ components
    )
