"""Per-image maths in SQL: an image's covariance, eigen decomposition and principal components,
its value statistics, and resampling. ``image`` is an image struct or a file, as for the pixel
functions; a file that cannot be decoded gives NULL."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

from dicomsql.dicom import pixels
from dicomsql.options import Bound
from dicomsql.stats import images
from dicomsql.stats.moments import MAX_DIMENSION

from .arrow import Expected
from .pixels import IMAGE, IMAGES_PER_BATCH, images64
from .pixels import images as images32
from .registry import ArgumentError, Struct, column, constant, sql_function

IMAGE_SIDE = Bound(1, 8192)
HISTOGRAM_BINS = Bound(1, 100_000)
COMPONENTS = Bound(1, MAX_DIMENSION)
MATRIX_COLUMNS = Bound(1, MAX_DIMENSION, "columns")

EIGEN = Struct(images.EIGEN_FIELDS, "IMAGE_EIGEN")
IMAGE_PCA = Struct(images.PCA_FIELDS, "IMAGE_PCA")
IMAGE_STATS = Struct(images.STATS_FIELDS, "IMAGE_STATS")


def _columns(found: list[pixels.Image | None]) -> list[int]:
    """The columns of each image: a columns x columns matrix follows."""
    return [image.columns for image in found if image is not None]


def matrices(array: Any) -> list[pixels.Image | None]:
    """The single-sample images of an ``image`` argument, as float64."""
    found = images64(array)
    if any(image is not None and image.samples > 1 for image in found):
        raise Expected("a single-sample (grayscale) image", "a colour image")
    return found


MATRIX = column("image", "IMAGE or file", matrices, bound=MATRIX_COLUMNS, sizes=_columns)


def _per_image(compute: Callable[[np.ndarray], Any], found: list[pixels.Image | None]) -> list[Any]:
    try:
        return [None if image is None else compute(image.data) for image in found]
    except ValueError as exc:
        raise ArgumentError("image", str(exc)) from None


@sql_function(
    MATRIX,
    returns="ARRAY<ARRAY<DOUBLE>>",
    example="SELECT image_covariance(image_resize(path, 16, 16)) FROM demo_images LIMIT 1",
)
def image_covariance(image: list) -> list:
    """The sample covariance (n - 1) of an image's columns (variables) over its rows
    (observations): ``np.cov(image, rowvar=False)``, columns x columns."""
    return _per_image(images.covariance, image)


@sql_function(
    MATRIX,
    returns=EIGEN,
    example="SELECT image_eigen(image_resize(path, 16, 16)).eigenvalues FROM demo_images LIMIT 1",
)
def image_eigen(image: list) -> list:
    """Eigenvalues (largest first) and eigenvectors (one per array, entry of largest
    magnitude positive) of ``image_covariance``."""
    return _per_image(images.eigen, image)


@sql_function(
    MATRIX,
    constant("k", "INT", bound=COMPONENTS),
    returns=IMAGE_PCA,
    example="SELECT image_pca(path, 3).explained_variance_ratio FROM demo_images LIMIT 1",
)
def image_pca(image: list, k: int) -> list:
    """The first ``k`` principal components of an image's rows (at most min(rows, columns)):
    mean, components (k x columns, sign as ``image_eigen``), explained variance and its
    ratio, and each row's scores (rows x k)."""
    return _per_image(lambda matrix: images.pca(matrix, min(k, *matrix.shape)), image)


@sql_function(
    column("image", "IMAGE or file", images64),
    constant("bins", "INT", default=64, bound=HISTOGRAM_BINS),
    returns=IMAGE_STATS,
    example="SELECT path, image_stats(path).mean, image_stats(path).percentiles FROM demo_images LIMIT 3",
    rows_per_batch=IMAGES_PER_BATCH,
)
def image_stats(image: list, bins: int) -> list:
    """n (values), min, max, mean, std (population), the 1st 5th 25th 50th 75th 95th 99th
    percentiles, and a histogram (``bins`` equal bins, default 64, with their edges) of an
    image's values."""
    return [None if one is None else images.summary(one.data, bins) for one in image]


@sql_function(
    column("image", "IMAGE or file", images32),
    constant("rows", "INT", bound=IMAGE_SIDE),
    constant("columns", "INT", bound=IMAGE_SIDE),
    returns=IMAGE,
    example="SELECT image_resize(path, 64, 64).data FROM demo_images LIMIT 2",
    rows_per_batch=IMAGES_PER_BATCH,
)
def image_resize(image: list, rows: int, columns: int) -> list:
    """An image resampled (bilinear) to rows x columns, e.g. to bring a cohort to one size
    for ``pca_fit``; the pixel spacing is scaled to match."""
    out: list[dict | None] = []
    for one in image:
        if one is None:
            out.append(None)
            continue
        spacing = one.pixel_spacing
        if spacing:
            spacing = [spacing[0] * one.rows / rows, spacing[1] * one.columns / columns]
        resized = images.resize(one.data, rows, columns)
        out.append(
            one.struct()
            | {"rows": rows, "columns": columns, "pixel_spacing": spacing, "data": resized.ravel()}
        )
    return out
