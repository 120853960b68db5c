"""Image SQL functions: decoding to image structs, windowing, PNG thumbnails, per-image
maths (covariance, eigen, PCA, statistics), resampling, cohort covariance and PCA, volumes.

Wherever a function takes an ``image`` it accepts either an image struct (from
``dicom_image`` or ``image_resize``) or the file itself (a path, URI or the file's bytes):
then it decodes the first frame in modality units. Passing the file avoids moving the
pixels from Python to Spark and back between two functions.

A file that cannot be decoded (not DICOM, no pixel data, a transfer syntax without a
decoder, larger than the server's ``--max-file-size``) gives NULL, as a bad file gives a row
in a DICOM table: one bad file never kills a query. ``dicom_image(file).error`` says why;
``map('mode', 'FAILFAST')`` makes it fail.
"""

from __future__ import annotations

import base64
from typing import Any, Iterator, Tuple

import numpy as np
import pyarrow as pa

from dicomsql.dicom import pixels
from dicomsql.dicom.volume import VOLUME_FIELDS, Slice, stack
from dicomsql.errors import FunctionArgumentError
from dicomsql.stats import images, pca
from dicomsql.stats.moments import MAX_DIMENSION
from dicomsql.stats.options import Bound
from dicomsql.storage import check_file_size, open_file

from .arrow import column, columns_ddl, constant, first_map, numbers, struct_array, struct_ddl, struct_scalar
from .registry import bounded, sql_function

IMAGE_FIELDS: tuple[tuple[str, str], ...] = (
    ("rows", "bigint"), ("columns", "bigint"), ("frames", "bigint"), ("samples", "bigint"),
    ("photometric", "string"), ("pixel_spacing", "array<double>"), ("window", "array<double>"),
    ("data", "array<float>"), ("error", "string"),
)
IMAGE = struct_ddl(IMAGE_FIELDS)
#: Images per Arrow batch handed back to Spark (input batches may hold 10,000 rows).
IMAGES_PER_BATCH = 16

#: Bounds of the sizing arguments: image sides, thumbnails, components, bins, slices...
FRAME = Bound(0, 2**31 - 1)
IMAGE_SIDE = Bound(1, 8192)
THUMBNAIL_SIDE = Bound(1, 4096)
HISTOGRAM_BINS = Bound(1, 100_000)
COMPONENTS = Bound(1, MAX_DIMENSION)
MATRIX_COLUMNS = Bound(1, MAX_DIMENSION, "columns")
VECTOR_VALUES = Bound(1, MAX_DIMENSION, "values")
VOLUME_SLICES = Bound(1, 4096, "slices")


def _decoded(function: str, source: str | bytes, frame: int = 0, invert: bool = False,
             dtype: type = np.float32) -> pixels.Image:
    """Decode one file; any failure (a file larger than the size limit included) becomes a
    ValueError naming the function and the file."""
    where = source if isinstance(source, str) else f"<{len(source)} bytes>"
    try:
        if isinstance(source, str):
            with open_file(source, limited=True) as fp:
                return pixels.decode(fp, frame, invert=invert, dtype=dtype)
        check_file_size(len(source))
        return pixels.decode(source, frame, invert=invert, dtype=dtype)
    except Exception as exc:  # noqa: BLE001 - one clear message for any failure
        raise ValueError(f"{function}: cannot decode {where}: {type(exc).__name__}: {exc}") from None


def _decoded_or_none(function: str, source: str | bytes, frame: int = 0, dtype: type = np.float32) -> pixels.Image | None:
    try:
        return _decoded(function, source, frame, dtype=dtype)
    except ValueError:
        return None


def _image_dict(image: pixels.Image) -> dict[str, Any]:
    return {
        "rows": image.rows, "columns": image.columns, "frames": image.frames, "samples": image.samples,
        "photometric": image.photometric, "pixel_spacing": image.pixel_spacing,
        "window": list(image.window) if image.window else None, "data": image.data.ravel(),
    }


def _from_struct(row: dict[str, Any]) -> pixels.Image:
    shape = (row["rows"], row["columns"]) + ((row["samples"],) if (row.get("samples") or 1) > 1 else ())
    return pixels.Image(
        rows=row["rows"], columns=row["columns"], frames=row.get("frames") or 1, samples=row.get("samples") or 1,
        photometric=row.get("photometric") or "MONOCHROME2", pixel_spacing=row.get("pixel_spacing"),
        window=tuple(row["window"]) if row.get("window") else None,
        data=np.asarray(row["data"], dtype=np.float32).reshape(shape),
    )


def images_of(function: str, array: pa.Array, dtype: type = np.float32) -> list[pixels.Image | None]:
    """The images of an ``image`` argument: image structs, or files decoded (first frame)."""
    kind = array.type
    if pa.types.is_struct(kind):
        return [None if row is None or row.get("data") is None else _from_struct(row) for row in array.to_pylist()]
    if pa.types.is_string(kind) or pa.types.is_large_string(kind) or pa.types.is_binary(kind) or pa.types.is_large_binary(kind):
        return [None if source is None else _decoded_or_none(function, source, dtype=dtype) for source in array.to_pylist()]
    raise FunctionArgumentError(function, "image", "an image struct (dicom_image) or a file path or its bytes", str(kind))


def _in_chunks(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[Tuple[pa.Array, ...]]:
    """Input batches cut into chunks of IMAGES_PER_BATCH rows, so decoded images leave the
    worker a few at a time."""
    for batch in batches:
        batch = batch if isinstance(batch, tuple) else (batch,)
        for start in range(0, len(batch[0]), IMAGES_PER_BATCH):
            yield tuple(column_.slice(start, IMAGES_PER_BATCH) for column_ in batch)


def _argument(chunk: Tuple[pa.Array, ...], index: int) -> pa.Array | None:
    return chunk[index] if len(chunk) > index else None


def _frame_numbers(function: str, chunk: Tuple[pa.Array, ...]) -> np.ndarray:
    """The ``frame`` argument (default 0) of each row, checked against its bound (NaN: NULL)."""
    frames = numbers(chunk[1], function, "frame") if len(chunk) > 1 else np.zeros(len(chunk[0]))
    for frame in frames[~np.isnan(frames)]:
        bounded(function, "frame", frame)
    return frames


@sql_function(
    "file STRING or BINARY [, frame INT [, options MAP<STRING,STRING>]]",
    returns=IMAGE,
    example="SELECT path, dicom_image(path).rows, dicom_image(path).pixel_spacing FROM demo_images LIMIT 3",
    bounds={"frame": FRAME},
)
def dicom_image(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    """One frame (default 0) of a file as an image struct: rows, columns, frames (in the
    file), samples (1, or 3 for RGB), photometric interpretation, pixel spacing, the file's
    display window (center, width), and the values row by row (samples last) in modality
    units; colour is RGB (YCbCr converted, palettes applied).

    ``options``: ``invert`` (``true`` mirrors values within their range, e.g. to show a
    MONOCHROME1 image the usual way), ``mode`` (``PERMISSIVE`` default: a file that cannot
    be decoded gives NULL data and the reason in ``error``; ``FAILFAST`` fails the query).
    """
    for chunk in _in_chunks(batches):
        options = first_map(_argument(chunk, 2)) or {}
        invert = options.get("invert", "false").lower() == "true"
        failfast = options.get("mode", "PERMISSIVE").upper() == "FAILFAST"
        frames = _frame_numbers("dicom_image", chunk)
        rows = []
        for source, frame in zip(chunk[0].to_pylist(), frames):
            if source is None:
                rows.append(None)
                continue
            try:
                rows.append(_image_dict(_decoded("dicom_image", source, int(frame), invert)))
            except ValueError as exc:
                if failfast:
                    raise
                rows.append({"error": str(exc).removeprefix("dicom_image: ")})
        yield struct_array(rows, IMAGE_FIELDS)


@sql_function(
    "file STRING or BINARY [, frame INT]",
    returns="ARRAY<FLOAT>",
    example="SELECT path, size(dicom_pixels(path)) FROM demo_images LIMIT 3",
    bounds={"frame": FRAME},
)
def dicom_pixels(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    """One frame's (default 0) pixel values in modality units, row by row (samples last for
    colour), as floats.

    ``file`` is a path (or URI) an executor can open, or the file's bytes (the ``content``
    column of ``pixels 'bytes'``). Rescale Slope/Intercept (or the Modality LUT) is applied,
    so CT values are Hounsfield units. A file that cannot be decoded gives NULL;
    ``dicom_image(file).error`` says why.
    """
    for chunk in _in_chunks(batches):
        frames = _frame_numbers("dicom_pixels", chunk)
        images_ = [None if source is None else _decoded_or_none("dicom_pixels", source, int(frame))
                   for source, frame in zip(chunk[0].to_pylist(), frames)]
        yield column([None if image is None else image.data.ravel() for image in images_], "array<float>")


@sql_function(
    "file STRING or BINARY",
    returns=f"frame BIGINT, image {IMAGE}",
    kind="table",
    example="SELECT f.frame, f.image.rows FROM (SELECT path FROM demo_images LIMIT 1) i, LATERAL dicom_frames(i.path) f",
    name="dicom_frames",
)
class DicomFrames:
    """Every frame of a multi-frame file, one row each: frame number (from 0) and image."""

    def eval(self, source: Any) -> Iterator[tuple]:
        if source is None:
            return
        first = _decoded("dicom_frames", source, 0)
        for frame in range(first.frames):
            image = first if frame == 0 else _decoded("dicom_frames", source, frame)
            yield frame, _image_dict(image) | {"data": image.data.ravel().tolist(), "error": None}


def _window_of(function: str, image: pixels.Image, first: Any, width: Any) -> tuple[float, float]:
    if first is None:
        return pixels.display_window(image)
    if isinstance(first, str):
        try:
            return pixels.display_window(image, first.lower())
        except KeyError as exc:
            raise FunctionArgumentError.because(function, "window", str(exc).strip('"')) from None
    if width is None:
        raise FunctionArgumentError(function, "width", "given with a window center", "NULL")
    return float(first), float(width)


def _as_image(function: str, array: pa.Array) -> list[pixels.Image | None]:
    """Images from an image argument, or from bare pixel arrays (shape unknown: one row)."""
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        return [None if v is None else pixels.Image(1, len(v), 1, 1, "MONOCHROME2", None, None,
                                                     np.asarray(v, dtype=np.float32).reshape(1, -1))
                for v in array.to_pylist()]
    return images_of(function, array)


@sql_function(
    "pixels ARRAY<FLOAT> or image [, center DOUBLE or preset STRING [, width DOUBLE]]",
    returns="ARRAY<FLOAT>",
    example="SELECT dicom_window(dicom_pixels(path), 'lung'), dicom_window(path), dicom_window(path, 40, 400) "
            "FROM demo_images WHERE Modality = 'CT' LIMIT 2",
)
def dicom_window(values: pa.Array, center: pa.Array = None, width: pa.Array = None) -> pa.Array:
    """Values mapped to [0, 1] through a display window (the DICOM linear VOI function):
    ``center`` and ``width``, or a preset (``lung`` -600/1500, ``bone`` 400/1800,
    ``brain`` 40/80, ``abdomen`` 40/400, ``mediastinum`` 50/350, ``liver`` 60/160), or, with
    no window given, the file's own WindowCenter/WindowWidth (else the value range)."""
    first = constant(center)
    second = constant(width)
    out = []
    for image in _as_image("dicom_window", values):
        if image is None:
            out.append(None)
            continue
        out.append(pixels.window(image.data, *_window_of("dicom_window", image, first, second)).ravel())
    return column(out, "array<float>")


def _pngs(function: str, array: pa.Array, size: pa.Array | None, preset: pa.Array | None) -> list[bytes | None]:
    side = bounded(function, "size", constant(size, 256))
    name = constant(preset)
    if name is not None and name.lower() not in pixels.WINDOW_PRESETS and name.lower() != "auto":
        raise FunctionArgumentError(function, "window", f"auto or one of {', '.join(pixels.WINDOW_PRESETS)}", repr(name))
    preset_name = None if name is None or name.lower() == "auto" else name.lower()
    return [None if image is None else pixels.to_png(image, side, preset_name) for image in images_of(function, array)]


@sql_function(
    "image [, size INT [, window STRING]]",
    returns="BINARY",
    example="SELECT path, dicom_png(path, 128, 'lung') FROM demo_images WHERE Modality = 'CT' LIMIT 2",
    bounds={"size": THUMBNAIL_SIDE},
)
def dicom_png(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    """A PNG thumbnail whose longest side is ``size`` pixels (default 256): monochrome images
    windowed (a preset name, else the file's window, else the value range; MONOCHROME1
    shown inverted), colour as RGB."""
    for chunk in _in_chunks(batches):
        yield pa.array(_pngs("dicom_png", chunk[0], _argument(chunk, 1), _argument(chunk, 2)), type=pa.binary())


@sql_function(
    "image [, size INT [, window STRING]]",
    returns="STRING",
    example="SELECT path, dicom_png_uri(path, 64) FROM demo_images LIMIT 2",
    bounds={"size": THUMBNAIL_SIDE},
)
def dicom_png_uri(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    """``dicom_png`` as a ``data:image/png;base64,...`` URI, which notebooks and BI tools
    show as an image."""
    for chunk in _in_chunks(batches):
        pngs = _pngs("dicom_png_uri", chunk[0], _argument(chunk, 1), _argument(chunk, 2))
        yield pa.array([None if p is None else "data:image/png;base64," + base64.b64encode(p).decode() for p in pngs],
                       type=pa.string())


def _matrices(function: str, array: pa.Array) -> list[np.ndarray | None]:
    out = []
    for image in images_of(function, array, dtype=np.float64):
        if image is not None and image.samples > 1:
            raise FunctionArgumentError(function, "image", "a single-sample (grayscale) image", "a colour image")
        if image is not None:
            bounded(function, "image", image.columns)  # a columns x columns matrix follows
        out.append(None if image is None else image.data)
    return out


def _per_image(function: str, compute: Any, array: pa.Array) -> list[Any]:
    matrices = _matrices(function, array)  # outside the try: its errors name their argument already
    try:
        return [None if matrix is None else compute(matrix) for matrix in matrices]
    except ValueError as exc:
        raise FunctionArgumentError.because(function, "image", str(exc)) from None


@sql_function(
    "image",
    returns="ARRAY<ARRAY<DOUBLE>>",
    example="SELECT image_covariance(image_resize(path, 16, 16)) FROM demo_images LIMIT 1",
    bounds={"image": MATRIX_COLUMNS},
)
def image_covariance(image: pa.Array) -> pa.Array:
    """The sample covariance (n - 1) of an image's columns (variables) over its rows
    (observations): ``np.cov(image, rowvar=False)``, columns x columns."""
    return column(_per_image("image_covariance", images.covariance, image), "array<array<double>>")


@sql_function(
    "image",
    returns=struct_ddl(images.EIGEN_FIELDS),
    example="SELECT image_eigen(image_resize(path, 16, 16)).eigenvalues FROM demo_images LIMIT 1",
    bounds={"image": MATRIX_COLUMNS},
)
def image_eigen(image: pa.Array) -> pa.Array:
    """Eigenvalues (largest first) and eigenvectors (one per array, entry of largest
    magnitude positive) of ``image_covariance``."""
    return struct_array(_per_image("image_eigen", images.eigen, image), images.EIGEN_FIELDS)


@sql_function(
    "image, k INT",
    returns=struct_ddl(images.PCA_FIELDS),
    example="SELECT image_pca(path, 3).explained_variance_ratio FROM demo_images LIMIT 1",
    bounds={"image": MATRIX_COLUMNS, "k": COMPONENTS},
)
def image_pca(image: pa.Array, k: pa.Array) -> pa.Array:
    """The first ``k`` principal components of an image's rows (at most min(rows, columns)):
    mean, components (k x columns, sign as ``image_eigen``), explained variance and its
    ratio, and each row's scores (rows x k)."""
    count = bounded("image_pca", "k", constant(k))
    return struct_array(_per_image("image_pca", lambda m: images.pca(m, min(count, *m.shape)), image), images.PCA_FIELDS)


@sql_function(
    "image [, bins INT]",
    returns=struct_ddl(images.STATS_FIELDS),
    example="SELECT path, image_stats(path).mean, image_stats(path).percentiles FROM demo_images LIMIT 3",
    bounds={"bins": HISTOGRAM_BINS},
)
def image_stats(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    """n (values), min, max, mean, std (population), the 1st 5th 25th 50th 75th 95th 99th
    percentiles, and a histogram (``bins`` equal bins, default 64, with their edges) of an
    image's values."""
    for chunk in _in_chunks(batches):
        bins = bounded("image_stats", "bins", constant(_argument(chunk, 1), 64))
        found = images_of("image_stats", chunk[0], dtype=np.float64)
        yield struct_array([None if i is None else images.summary(i.data, bins) for i in found], images.STATS_FIELDS)


@sql_function(
    "image, rows INT, columns INT",
    returns=IMAGE,
    example="SELECT image_resize(path, 64, 64).data FROM demo_images LIMIT 2",
    bounds={"rows": IMAGE_SIDE, "columns": IMAGE_SIDE},
)
def image_resize(batches: Iterator[Tuple[pa.Array, ...]]) -> Iterator[pa.Array]:
    """An image resampled (bilinear) to rows x columns, e.g. to bring a cohort to one size
    for ``pca_fit``; the pixel spacing is scaled to match."""
    for chunk in _in_chunks(batches):
        rows, columns = bounded("image_resize", "rows", constant(chunk[1])), bounded("image_resize", "columns", constant(chunk[2]))
        out = []
        for image in images_of("image_resize", chunk[0]):
            if image is None:
                out.append(None)
                continue
            resized = images.resize(image.data, rows, columns)
            spacing = image.pixel_spacing
            if spacing:
                spacing = [spacing[0] * image.rows / rows, spacing[1] * image.columns / columns]
            out.append(_image_dict(image) | {"rows": rows, "columns": columns, "pixel_spacing": spacing,
                                             "data": resized.ravel()})
        yield struct_array(out, IMAGE_FIELDS)


def _vectors(function: str, array: pa.Array) -> np.ndarray:
    """A batch of vectors (ARRAY<FLOAT or DOUBLE>) as rows; NULL vectors left out."""
    values = [v for v in array.to_pylist() if v is not None]
    if not values:
        return np.empty((0, 0))
    lengths = {len(v) for v in values}
    if len(lengths) > 1:
        raise FunctionArgumentError(function, "vector", "arrays of one length (resample images to one size)",
                                    f"lengths {sorted(lengths)[:5]}")
    return np.asarray(values, dtype=np.float64)


def _moments(function: str, batches: Iterator[Tuple[pa.Array, ...]]) -> tuple[pca.Moments, Tuple[pa.Array, ...] | None]:
    moments, last = pca.Moments(), None
    for batch in batches:
        batch = batch if isinstance(batch, tuple) else (batch,)
        vectors = _vectors(function, batch[0])
        if vectors.size:
            bounded(function, "vector", vectors.shape[1])  # a d x d matrix follows
        try:
            moments.add(vectors)
        except ValueError as exc:
            raise FunctionArgumentError.because(function, "vector", str(exc)) from None
        last = batch
    return moments, last


def _covariance(moments: pca.Moments) -> dict[str, Any]:
    if moments.n < 2:
        return {"n": moments.n, "error": "a covariance needs at least 2 vectors"}
    return {"n": moments.n, "mean": moments.mean, "covariance": moments.covariance()}


@sql_function(
    "vector ARRAY<DOUBLE>",
    returns=struct_ddl(pca.COV_FIELDS),
    kind="aggregate",
    example="SELECT Modality, cov_fit(image_resize(path, 8, 8).data).n FROM demo_images WHERE _corrupt_record IS NULL GROUP BY Modality",
    bounds={"vector": VECTOR_VALUES},
)
def cov_fit(batches: Iterator[pa.Array]) -> pa.Scalar:
    """Mean and sample covariance (n - 1, as ``np.cov``) of the vectors of a group, streamed
    batch by batch (memory O(d^2), never the whole group). One streaming aggregate per
    query: Spark runs a single one of this kind per aggregation."""
    moments, _ = _moments("cov_fit", batches)
    return struct_scalar(_covariance(moments), pca.COV_FIELDS)


@sql_function(
    "vector ARRAY<DOUBLE>, k INT [, options MAP<STRING,STRING>]",
    returns=struct_ddl(pca.MODEL_FIELDS),
    kind="aggregate",
    example="SELECT pca_fit(image_resize(path, 16, 16).data, 4) FROM demo_images WHERE Modality = 'CT'",
    bounds={"k": COMPONENTS},
    options=pca.OPTIONS,
)
def pca_fit(batches: Iterator[Tuple[pa.Array, ...]]) -> pa.Scalar:
    """Principal components of the vectors of a group ("eigen-images" when the vectors are
    resampled images): mean, k components, eigenvalues, explained variance ratio, n, and
    ``method``. Streams batch by batch keeping O(d^2) state (``covariance``); for d above
    ``max_dimension`` (option, default 4096) it keeps the vectors and uses the Gram matrix
    (n <= d) or a randomized SVD (n > d, approximate). Options: ``max_dimension``,
    ``method`` (auto, covariance: refuses vectors longer than ``max_dimension``, gram,
    randomized), ``seed``."""
    accumulator = None
    for batch in batches:
        if accumulator is None:
            k = bounded("pca_fit", "k", constant(batch[1]))
            try:
                accumulator = pca.PcaAccumulator.create(k, first_map(_argument(batch, 2)))
            except ValueError as exc:
                raise FunctionArgumentError.because("pca_fit", "options", str(exc)) from None
        try:
            accumulator.add(_vectors("pca_fit", batch[0]))
        except ValueError as exc:
            raise FunctionArgumentError.because("pca_fit", "vector", str(exc)) from None
    try:
        model = accumulator.model() if accumulator else {"error": "no vectors"}
    except ValueError as exc:
        model = {"n": accumulator.moments.n, "error": str(exc)}
    return struct_scalar(model, pca.MODEL_FIELDS)


def _model_rows(function: str, model: pa.Array, vectors: pa.Array, transform: Any) -> pa.Array:
    from .arrow import Models

    out: list[Any] = [None] * len(vectors)
    values = vectors.to_pylist()
    for fitted, where in Models(model):
        if fitted.get("error") or fitted.get("components") is None:
            continue
        rows = [i for i in where if values[i] is not None]
        if not rows:
            continue
        try:
            results = transform(fitted, np.asarray([values[i] for i in rows], dtype=np.float64))
        except ValueError as exc:
            raise FunctionArgumentError.because(function, "vector", str(exc)) from None
        for i, result in zip(rows, results):
            out[i] = result
    return column(out, "array<double>")


@sql_function(
    "model PCA_MODEL, vector ARRAY<DOUBLE>",
    returns="ARRAY<DOUBLE>",
    example="SELECT pca_project(m.model, image_resize(i.path, 16, 16).data) FROM demo_images i "
            "CROSS JOIN (SELECT pca_fit(image_resize(path, 16, 16).data, 4) AS model FROM demo_images WHERE Modality = 'CT') m "
            "WHERE i.Modality = 'CT' LIMIT 3",
)
def pca_project(model: pa.Array, vector: pa.Array) -> pa.Array:
    """The scores of a vector on a ``pca_fit`` model's components: (vector - mean) .
    components."""
    return _model_rows("pca_project", model, vector, pca.project)


@sql_function(
    "model PCA_MODEL, scores ARRAY<DOUBLE>",
    returns="ARRAY<DOUBLE>",
    example="SELECT pca_reconstruct(m.model, array(1.0, 0.0)) FROM "
            "(SELECT pca_fit(image_resize(path, 16, 16).data, 2) AS model FROM demo_images WHERE Modality = 'CT') m",
)
def pca_reconstruct(model: pa.Array, scores: pa.Array) -> pa.Array:
    """A vector back from its scores on a ``pca_fit`` model: mean + scores . components
    (the first len(scores) components)."""
    return _model_rows("pca_reconstruct", model, scores, pca.reconstruct)


@sql_function(
    "TABLE(t) whose first column is a vector ARRAY<DOUBLE>",
    returns=columns_ddl(pca.PARTIAL_FIELDS),
    kind="table",
    example="SELECT cov_merge(n, mean, scatter).n FROM cov_partials(TABLE(SELECT image_resize(path, 8, 8).data FROM demo_images))",
    name="cov_partials",
    bounds={"vector": VECTOR_VALUES},
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

    def eval(self, row: Any) -> Iterator[tuple]:
        vector = row[0]
        if vector is not None:
            bounded("cov_partials", "vector", len(vector))  # a d x d matrix follows
            self.pending.append(vector)
            if len(self.pending) >= 256:
                self._flush()
        return iter(())

    def terminate(self) -> Iterator[tuple]:
        self._flush()
        if self.moments.n:
            yield self.moments.n, self.moments.mean.tolist(), self.moments.scatter.tolist()


@sql_function(
    "n BIGINT, mean ARRAY<DOUBLE>, scatter ARRAY<ARRAY<DOUBLE>>",
    returns=struct_ddl(pca.COV_FIELDS),
    kind="aggregate",
    example="SELECT cov_merge(n, mean, scatter) FROM cov_partials(TABLE(SELECT image_resize(path, 8, 8).data FROM demo_images))",
)
def cov_merge(n: pa.Array, mean: pa.Array, scatter: pa.Array) -> pa.Scalar:
    """Merge ``cov_partials`` rows into the mean and covariance of all vectors (the same
    result as ``cov_fit``)."""
    moments = pca.Moments()
    for count, centre, matrix in zip(n.to_pylist(), mean.to_pylist(), scatter.to_pylist()):
        if count:
            moments.merge(pca.Moments(count, np.asarray(centre), np.asarray(matrix)))
    return struct_scalar(_covariance(moments), pca.COV_FIELDS)


@sql_function(
    "covariance COV, k INT",
    returns=struct_ddl(pca.MODEL_FIELDS),
    example="SELECT pca_from_cov(c, 3).explained_variance_ratio FROM (SELECT cov_merge(n, mean, scatter) AS c "
            "FROM cov_partials(TABLE(SELECT image_resize(path, 8, 8).data FROM demo_images)))",
    bounds={"k": COMPONENTS},
)
def pca_from_cov(covariance: pa.Array, k: pa.Array) -> pa.Array:
    """A ``pca_fit`` model from a ``cov_fit`` or ``cov_merge`` result."""
    count = bounded("pca_from_cov", "k", constant(k))
    out = []
    for row in covariance.to_pylist():
        if row is None or row.get("covariance") is None:
            out.append(None if row is None else {"n": row.get("n"), "error": row.get("error")})
            continue
        matrix = np.asarray(row["covariance"], dtype=np.float64)
        moments = pca.Moments(row["n"], np.asarray(row["mean"]), matrix * (row["n"] - 1))
        out.append(pca.from_moments(moments, min(count, len(matrix))))
    return struct_array(out, pca.MODEL_FIELDS)


@sql_function(
    "image, ImagePositionPatient ARRAY<DOUBLE>, ImageOrientationPatient ARRAY<DOUBLE>",
    returns=struct_ddl(VOLUME_FIELDS),
    kind="aggregate",
    example="SELECT SeriesInstanceUID, series_volume(dicom_image(path), ImagePositionPatient, ImageOrientationPatient).shape "
            "FROM demo_images WHERE Modality = 'CT' AND _corrupt_record IS NULL GROUP BY SeriesInstanceUID",
    bounds={"image": VOLUME_SLICES},
)
def series_volume(image: pa.Array, position: pa.Array, orientation: pa.Array) -> pa.Scalar:
    """A series' slices stacked into a volume, sorted along the slice normal: shape (slices,
    rows, columns), spacing (between slices, rows, columns in mm), origin (position of the
    first slice), orientation, and the values (slices x rows x columns). A series with mixed
    orientations or image sizes, missing geometry, repeated positions or uneven spacing is
    refused with the reason in ``error``. (Spark does not mix Python aggregates with its own
    in one aggregation: compute ``min(...)`` and the like in another query.)"""
    bounded("series_volume", "image", len(image) - image.null_count)  # every slice is decoded, then stacked
    found = images_of("series_volume", image)
    slices = [
        Slice(i.data, p, o, i.pixel_spacing)
        for i, p, o in zip(found, position.to_pylist(), orientation.to_pylist()) if i is not None
    ]
    return struct_scalar(stack(slices), VOLUME_FIELDS)
