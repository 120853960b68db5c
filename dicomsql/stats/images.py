"""Per-image maths: covariance, eigen decomposition, PCA, summary statistics, resampling.

An image is a 2-D array (rows x columns). As spark-tk's matrix functions did, the columns
are the variables and the rows the observations. Eigenvectors and principal components have
a deterministic sign: the entry of largest magnitude is positive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = [
    "STATS_FIELDS",
    "PCA_FIELDS",
    "EIGEN_FIELDS",
    "covariance",
    "eigen",
    "pca",
    "summary",
    "resize",
    "orient",
]

PERCENTILES = (1, 5, 25, 50, 75, 95, 99)

STATS_FIELDS: tuple[tuple[str, str], ...] = (
    ("n", "bigint"),
    ("min", "double"),
    ("max", "double"),
    ("mean", "double"),
    ("std", "double"),
    ("percentiles", "array<double>"),
    ("percentile_levels", "array<double>"),
    ("histogram", "array<bigint>"),
    ("bin_edges", "array<double>"),
)
EIGEN_FIELDS: tuple[tuple[str, str], ...] = (
    ("eigenvalues", "array<double>"),
    ("eigenvectors", "array<array<double>>"),
)
PCA_FIELDS: tuple[tuple[str, str], ...] = (
    ("mean", "array<double>"),
    ("components", "array<array<double>>"),
    ("explained_variance", "array<double>"),
    ("explained_variance_ratio", "array<double>"),
    ("scores", "array<array<double>>"),
)


def orient(vectors: np.ndarray) -> np.ndarray:
    """Flip each row so that its entry of largest magnitude is positive (a deterministic
    sign for eigenvectors and components, which are defined up to sign)."""
    vectors = np.atleast_2d(vectors)
    largest = np.argmax(np.abs(vectors), axis=1)
    signs = np.sign(vectors[np.arange(len(vectors)), largest])
    signs[signs == 0] = 1
    return vectors * signs[:, None]


def _matrix(image: np.ndarray) -> np.ndarray:
    matrix = np.asarray(image, dtype=np.float64)
    if matrix.ndim != 2:
        raise ValueError(
            f"needs a single-sample (grayscale) image, got an array of shape {matrix.shape}"
        )
    if matrix.shape[0] < 2:
        raise ValueError("needs an image of at least 2 rows")
    return matrix


def covariance(image: np.ndarray) -> np.ndarray:
    """The sample covariance (n - 1) of the columns over the rows: ``np.cov(image, rowvar=False)``."""
    return np.cov(_matrix(image), rowvar=False)


def eigen(image: np.ndarray) -> dict[str, Any]:
    """Eigenvalues (largest first) and eigenvectors (one per row) of :func:`covariance`."""
    values, vectors = np.linalg.eigh(covariance(image))
    order = np.argsort(values)[::-1]
    return {"eigenvalues": values[order], "eigenvectors": orient(vectors[:, order].T)}


def pca(image: np.ndarray, k: int) -> dict[str, Any]:
    """The first ``k`` principal components of the rows (observations) of ``image``, by SVD
    of the column-centred matrix: mean, components (k x columns), explained variance and its
    ratio, and the scores of every row (rows x k)."""
    matrix = _matrix(image)
    if not 1 <= k <= min(matrix.shape):
        raise ValueError(f"k must be between 1 and {min(matrix.shape)}, got {k}")
    mean = matrix.mean(axis=0)
    centred = matrix - mean
    _, singular, rows = np.linalg.svd(centred, full_matrices=False)
    variance = singular**2 / (len(matrix) - 1)
    components = orient(rows[:k])
    return {
        "mean": mean,
        "components": components,
        "explained_variance": variance[:k],
        "explained_variance_ratio": variance[:k] / variance.sum()
        if variance.sum() > 0
        else np.zeros(k),
        "scores": centred @ components.T,
    }


def summary(values: np.ndarray, bins: int = 64) -> dict[str, Any]:
    """n (finite values), min, max, mean, std (population), percentiles 1 5 25 50 75 95 99,
    and a histogram of ``bins`` equal bins between min and max."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    flat = flat[np.isfinite(flat)]
    if flat.size == 0:
        return {"n": 0}
    histogram, edges = np.histogram(flat, bins=bins)
    return {
        "n": int(flat.size),
        "min": float(flat.min()),
        "max": float(flat.max()),
        "mean": float(flat.mean()),
        "std": float(flat.std()),
        "percentiles": np.percentile(flat, PERCENTILES),
        "percentile_levels": np.asarray(PERCENTILES, dtype=float),
        "histogram": histogram,
        "bin_edges": edges,
    }


def resize(image: np.ndarray, rows: int, columns: int) -> np.ndarray:
    """``image`` resampled to rows x columns (bilinear; each sample of a colour image alike)."""
    from PIL import Image as PILImage

    if rows < 1 or columns < 1:
        raise ValueError(f"rows and columns must be >= 1, got {rows} x {columns}")
    data = np.asarray(image, dtype=np.float32)
    planes = [data] if data.ndim == 2 else [data[..., i] for i in range(data.shape[-1])]
    resized = [
        np.asarray(
            PILImage.fromarray(plane, mode="F").resize(
                (columns, rows), PILImage.Resampling.BILINEAR
            )
        )
        for plane in planes
    ]
    return resized[0] if data.ndim == 2 else np.stack(resized, axis=-1)
