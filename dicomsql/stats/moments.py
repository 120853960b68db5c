"""Streaming first and second moments of vectors: count, mean and scatter matrix, updated
batch by batch with the pairwise formulas of Chan, Golub and LeVeque, so partial results of
different batches or partitions merge exactly. Covariance, PCA and least squares are all
computed from them in O(d^2) memory."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["Moments", "MAX_DIMENSION"]

#: The largest d whose d x d matrix (512 MiB of float64) a covariance or PCA accumulates.
MAX_DIMENSION = 8192


@dataclass
class Moments:
    """Count, mean and scatter matrix (sum of outer products of deviations) of vectors."""

    n: int = 0
    mean: np.ndarray | None = None
    scatter: np.ndarray | None = None

    def add(self, vectors: np.ndarray) -> Moments:
        """Add a batch of vectors (rows)."""
        vectors = np.asarray(vectors, dtype=np.float64)
        if len(vectors) == 0:
            return self
        mean = vectors.mean(axis=0)
        centred = vectors - mean
        return self.merge(Moments(len(vectors), mean, centred.T @ centred))

    def merge(self, other: Moments) -> Moments:
        """The moments of both sets together (exact, order-independent up to rounding)."""
        if other.n == 0:
            return self
        if self.n == 0:
            self.n, self.mean, self.scatter = other.n, other.mean.copy(), other.scatter.copy()
            return self
        if other.mean.shape != self.mean.shape:
            raise ValueError(
                f"vectors of different lengths: {self.mean.shape[0]} and {other.mean.shape[0]}"
            )
        n = self.n + other.n
        delta = other.mean - self.mean
        self.scatter = (
            self.scatter + other.scatter + np.outer(delta, delta) * (self.n * other.n / n)
        )
        self.mean = self.mean + delta * (other.n / n)
        self.n = n
        return self

    def widen(self, dimension: int) -> Moments:
        """Append columns that were 0 in every vector so far (a one-hot column for a category
        first seen in a later batch): their mean and scatter are 0."""
        if self.n and dimension > len(self.mean):
            extra = dimension - len(self.mean)
            self.mean = np.r_[self.mean, np.zeros(extra)]
            self.scatter = np.pad(self.scatter, ((0, extra), (0, extra)))
        return self

    def embedded(self, positions: np.ndarray, dimension: int) -> Moments:
        """These moments as those of vectors of ``dimension`` coordinates whose coordinate
        ``positions[i]`` is coordinate ``i`` here and whose others are 0."""
        if self.n == 0:
            return Moments()
        mean, scatter = np.zeros(dimension), np.zeros((dimension, dimension))
        mean[positions] = self.mean
        scatter[np.ix_(positions, positions)] = self.scatter
        return Moments(self.n, mean, scatter)

    def covariance(self) -> np.ndarray:
        """The sample covariance (n - 1), as ``np.cov(vectors, rowvar=False)``."""
        if self.n < 2:
            raise ValueError("a covariance needs at least 2 vectors")
        return self.scatter / (self.n - 1)
