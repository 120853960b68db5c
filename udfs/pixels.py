"""Pixel SQL functions: decoding files to image structs and pixel arrays, frames, windowing, PNG
thumbnails, and series stacked into volumes.

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
from collections.abc import Iterator, Sequence
from functools import partial
from typing import Any

import numpy as np
import pyarrow as pa

from dicomsql.dicom import pixels
from dicomsql.dicom.volume import VOLUME_FIELDS, Slice, stack
from dicomsql.options import Bound
from dicomsql.source.options import IMAGE_OPTIONS
from dicomsql.storage import check_file_size, open_named

from .arrow import Expected, labels, numbers
from .registry import Struct, Table, column, constant, options, sql_function

IMAGE = Struct(
    (
        ("rows", "bigint"),
        ("columns", "bigint"),
        ("frames", "bigint"),
        ("samples", "bigint"),
        ("photometric", "string"),
        ("pixel_spacing", "array<double>"),
        ("window", "array<double>"),
        ("data", "array<float>"),
        ("error", "string"),
    ),
    "IMAGE",
)
VOLUME = Struct(VOLUME_FIELDS, "VOLUME")
#: Images per Arrow batch handed back to Spark (input batches may hold 10,000 rows).
IMAGES_PER_BATCH = 16

FRAME = Bound(0, 2**31 - 1)
THUMBNAIL_SIDE = Bound(1, 4096)
VOLUME_SLICES = Bound(1, 4096, "slices")


def decoded(
    source: str | bytes, frame: int = 0, invert: bool = False, dtype: type = np.float32
) -> pixels.Image:
    """Decode one frame of a file (a path or URI, or its bytes); any failure (a file larger
    than the size limit included) is a ValueError naming the file and the reason."""
    where = source if isinstance(source, str) else f"<{len(source)} bytes>"
    try:
        if isinstance(source, str):
            with open_named(source) as fp:
                return pixels.decode(fp, frame, invert=invert, dtype=dtype)
        check_file_size(len(source))
        return pixels.decode(source, frame, invert=invert, dtype=dtype)
    except Exception as exc:  # noqa: BLE001 - one clear message for any failure
        raise ValueError(f"cannot decode {where}: {type(exc).__name__}: {exc}") from None


def _decoded_or_none(source: str | bytes | None, dtype: type = np.float32) -> pixels.Image | None:
    if source is None:
        return None
    try:
        return decoded(source, dtype=dtype)
    except ValueError:
        return None


def _is_file(kind: pa.DataType) -> bool:
    return (
        pa.types.is_string(kind)
        or pa.types.is_large_string(kind)
        or pa.types.is_binary(kind)
        or pa.types.is_large_binary(kind)
    )


def files(array: pa.Array) -> list[str | bytes | None]:
    """The files of a ``file`` argument: paths or URIs, or the files' bytes (a NULL literal:
    no file)."""
    if pa.types.is_null(array.type):
        return [None] * len(array)
    if not _is_file(array.type):
        raise Expected("a file path or URI (STRING) or its bytes (BINARY)", str(array.type))
    return array.to_pylist()


def images(array: pa.Array, dtype: type = np.float32) -> list[pixels.Image | None]:
    """The images of an ``image`` argument: image structs, or files decoded (first frame;
    NULL when a file cannot be decoded)."""
    if pa.types.is_struct(array.type):
        return [
            None if row is None or row.get("data") is None else pixels.Image.from_struct(row, dtype)
            for row in array.to_pylist()
        ]
    _check_images(array)
    return [
        None if pa.types.is_null(array.type) else _decoded_or_none(source, dtype)
        for source in array.to_pylist()
    ]


def _check_images(array: pa.Array) -> None:
    if not (pa.types.is_struct(array.type) or _is_file(array.type) or pa.types.is_null(array.type)):
        raise Expected("an image struct (dicom_image) or a file path or its bytes", str(array.type))


#: The images of an ``image`` argument as float64, for the per-image maths.
images64 = partial(images, dtype=np.float64)


def _frames(frames: np.ndarray) -> np.ndarray:
    return frames[~np.isnan(frames)]


@sql_function(
    column("file", "STRING or BINARY", files),
    column("frame", "INT", numbers, default=None, bound=FRAME, sizes=_frames),
    options(IMAGE_OPTIONS),
    returns=IMAGE,
    example="SELECT path, dicom_image(path).rows, dicom_image(path).pixel_spacing FROM demo_images LIMIT 3",
    rows_per_batch=IMAGES_PER_BATCH,
)
def dicom_image(file: list, frame: np.ndarray | None, options: dict) -> list[dict | None]:
    """One frame (default 0) of a file as an image struct: rows, columns, frames (in the
    file), samples (1, or 3 for RGB), photometric interpretation, pixel spacing, the file's
    display window (center, width), and the values row by row (samples last) in modality
    units; colour is RGB (YCbCr converted, palettes applied). A file that cannot be decoded
    gives NULL data and the reason in ``error`` (unless ``mode`` is ``failfast``)."""
    frames = np.zeros(len(file)) if frame is None else frame
    rows: list[dict | None] = []
    for source, number in zip(file, frames):
        if source is None:
            rows.append(None)
            continue
        try:
            rows.append(decoded(source, int(np.nan_to_num(number)), options["invert"]).struct())
        except ValueError as exc:
            if options["mode"] == "FAILFAST":
                raise
            rows.append({"error": str(exc)})
    return rows


@sql_function(
    column("file", "STRING or BINARY", files),
    column("frame", "INT", numbers, default=None, bound=FRAME, sizes=_frames),
    returns="ARRAY<FLOAT>",
    example="SELECT path, size(dicom_pixels(path)) FROM demo_images LIMIT 3",
    rows_per_batch=IMAGES_PER_BATCH,
)
def dicom_pixels(file: list, frame: np.ndarray | None) -> list[np.ndarray | None]:
    """One frame's (default 0) pixel values in modality units, row by row (samples last for
    colour), as floats.

    ``file`` is a path (or URI) an executor can open, or the file's bytes (the ``content``
    column of ``pixels 'bytes'``). Rescale Slope/Intercept (or the Modality LUT) is applied,
    so CT values are Hounsfield units. A file that cannot be decoded gives NULL;
    ``dicom_image(file).error`` says why.
    """
    frames = np.zeros(len(file)) if frame is None else frame
    out: list[np.ndarray | None] = []
    for source, number in zip(file, frames):
        try:
            out.append(
                None if source is None else decoded(source, int(np.nan_to_num(number))).data.ravel()
            )
        except ValueError:
            out.append(None)
    return out


@sql_function(
    column("file", "STRING or BINARY"),
    returns=Table((("frame", "bigint"), ("image", IMAGE))),
    kind="table",
    example="SELECT f.frame, f.image.rows FROM (SELECT path FROM demo_images LIMIT 1) i, LATERAL dicom_frames(i.path) f",
)
def dicom_frames(file: str | bytes | None) -> Iterator[tuple]:
    """Every frame of a multi-frame file, one row each: frame number (from 0) and image."""
    if file is None:
        return
    first = decoded(file, 0)
    for frame in range(first.frames):
        image = first if frame == 0 else decoded(file, frame)
        yield frame, image.struct() | {"data": image.data.ravel().tolist(), "error": None}


def window_setting(value: Any) -> float | str:
    """A ``window`` argument: a window center, or a preset's name."""
    if not isinstance(value, str):
        return float(value)
    if value.lower() not in pixels.WINDOW_PRESETS:
        raise Expected(f"a window center or one of {', '.join(pixels.WINDOW_PRESETS)}", repr(value))
    return value.lower()


def number(value: Any) -> float:
    """A DOUBLE constant (a SQL number, or text that reads as one)."""
    try:
        return float(value)
    except (TypeError, ValueError):
        raise Expected("a number", repr(value)) from None


def _window_of(
    image: pixels.Image, window: float | str | None, width: float | None
) -> tuple[float, float]:
    if window is None:
        return pixels.display_window(image)
    if isinstance(window, str):
        return pixels.display_window(image, window)
    if width is None:
        raise Expected("given with a window center", "NULL", "width")
    return window, float(width)


def pixel_arrays(array: pa.Array) -> list[pixels.Image | None]:
    """Images from an image argument, or from bare pixel arrays (shape unknown: one row)."""
    if pa.types.is_list(array.type) or pa.types.is_large_list(array.type):
        return [
            None
            if v is None
            else pixels.Image(
                1,
                len(v),
                1,
                1,
                "MONOCHROME2",
                None,
                None,
                np.asarray(v, dtype=np.float32).reshape(1, -1),
            )
            for v in array.to_pylist()
        ]
    return images(array)


@sql_function(
    column("values", "ARRAY<FLOAT> or image", pixel_arrays),
    constant("window", "DOUBLE or STRING", window_setting, default=None),
    constant("width", "DOUBLE", number, default=None),
    returns="ARRAY<FLOAT>",
    example="SELECT dicom_window(dicom_pixels(path), 'lung'), dicom_window(path), dicom_window(path, 40, 400) "
    "FROM demo_images WHERE Modality = 'CT' LIMIT 2",
)
def dicom_window(
    values: list, window: float | str | None, width: float | None
) -> list[np.ndarray | None]:
    """Values mapped to [0, 1] through a display window (the DICOM linear VOI function):
    ``window`` (the center) and ``width``, or a preset (``lung`` -600/1500, ``bone`` 400/1800,
    ``brain`` 40/80, ``abdomen`` 40/400, ``mediastinum`` 50/350, ``liver`` 60/160), or, with
    no window given, the file's own WindowCenter/WindowWidth (else the value range)."""
    return [
        None
        if image is None
        else pixels.window(image.data, *_window_of(image, window, width)).ravel()
        for image in values
    ]


def preset(name: Any) -> str | None:
    """A ``window`` argument: a preset name, or ``auto`` (None: the file's window)."""
    if not isinstance(name, str) or (
        name.lower() != "auto" and name.lower() not in pixels.WINDOW_PRESETS
    ):
        raise Expected(f"auto or one of {', '.join(pixels.WINDOW_PRESETS)}", repr(name))
    return None if name.lower() == "auto" else name.lower()


PNG_ARGUMENTS = (
    column("image", "IMAGE or file", images),
    constant("size", "INT", default=256, bound=THUMBNAIL_SIDE),
    constant("window", "STRING", preset, default=None),
)


def _pngs(
    image: Sequence[pixels.Image | None], size: int, window: str | None
) -> list[bytes | None]:
    return [None if one is None else pixels.to_png(one, size, window) for one in image]


@sql_function(
    *PNG_ARGUMENTS,
    returns="BINARY",
    example="SELECT path, dicom_png(path, 128, 'lung') FROM demo_images WHERE Modality = 'CT' LIMIT 2",
    rows_per_batch=IMAGES_PER_BATCH,
)
def dicom_png(image: list, size: int, window: str | None) -> list[bytes | None]:
    """A PNG thumbnail whose longest side is ``size`` pixels (default 256): monochrome images
    windowed (a preset name, else the file's window, else the value range; MONOCHROME1
    shown inverted), colour as RGB."""
    return _pngs(image, size, window)


@sql_function(
    *PNG_ARGUMENTS,
    returns="STRING",
    example="SELECT path, dicom_png_uri(path, 64) FROM demo_images LIMIT 2",
    rows_per_batch=IMAGES_PER_BATCH,
)
def dicom_png_uri(image: list, size: int, window: str | None) -> list[str | None]:
    """``dicom_png`` as a ``data:image/png;base64,...`` URI, which notebooks and BI tools
    show as an image."""
    return [
        None if png is None else "data:image/png;base64," + base64.b64encode(png).decode()
        for png in _pngs(image, size, window)
    ]


def _slices(array: pa.Array) -> list[int]:
    """The number of slices of a group (checked against the bound before any is decoded)."""
    _check_images(array)
    return [len(array) - array.null_count]


@sql_function(
    column("image", "IMAGE or file", bound=VOLUME_SLICES, sizes=_slices),  # counted, then decoded
    column("ImagePositionPatient", "ARRAY<DOUBLE>", labels),
    column("ImageOrientationPatient", "ARRAY<DOUBLE>", labels),
    returns=VOLUME,
    kind="aggregate",
    example="SELECT SeriesInstanceUID, series_volume(dicom_image(path), ImagePositionPatient, ImageOrientationPatient).shape "
    "FROM demo_images WHERE Modality = 'CT' AND _corrupt_record IS NULL GROUP BY SeriesInstanceUID",
)
def series_volume(
    image: pa.Array, ImagePositionPatient: list, ImageOrientationPatient: list
) -> dict:
    """A series' slices stacked into a volume, sorted along the slice normal: shape (slices,
    rows, columns), spacing (between slices, rows, columns in mm), origin (position of the
    first slice), orientation, and the values (slices x rows x columns). A series with mixed
    orientations or image sizes, missing geometry, repeated positions or uneven spacing is
    refused with the reason in ``error``. (Spark does not mix Python aggregates with its own
    in one aggregation: compute ``min(...)`` and the like in another query.)"""
    slices = [
        Slice(one.data, position, orientation, one.pixel_spacing)
        for one, position, orientation in zip(
            images(image), ImagePositionPatient, ImageOrientationPatient
        )
        if one is not None
    ]
    return stack(slices)
