"""Pixel data: decode a frame, bring it to modality units, window it, render it as PNG.

Decoding is pydicom's (with the pylibjpeg plugins for JPEG, JPEG-LS, JPEG 2000 and RLE), so
the values are those of ``Dataset.pixel_array``: colour images come out as RGB (YCbCr
converted), palette colour images through their palette. Monochrome images then go through
the Modality LUT (Rescale Slope/Intercept), so CT values are Hounsfield units.
"""

from __future__ import annotations

import io
import os
from dataclasses import dataclass
from typing import BinaryIO, Union

import numpy as np
from pydicom import dcmread
from pydicom.dataset import Dataset
from pydicom.pixels import apply_color_lut, apply_modality_lut, pixel_array

from .header import looks_like_dicom

__all__ = [
    "PixelSource",
    "Image",
    "DecodeError",
    "WINDOW_PRESETS",
    "decode",
    "window",
    "file_window",
    "display_window",
    "to_8bit",
    "to_png",
]

#: A file path, the file's bytes, or an open binary file.
PixelSource = Union[str, "os.PathLike[str]", bytes, BinaryIO]

#: Common CT display windows: name -> (center, width) in Hounsfield units.
WINDOW_PRESETS: dict[str, tuple[float, float]] = {
    "lung": (-600.0, 1500.0),
    "bone": (400.0, 1800.0),
    "brain": (40.0, 80.0),
    "abdomen": (40.0, 400.0),
    "mediastinum": (50.0, 350.0),
    "liver": (60.0, 160.0),
}


class DecodeError(ValueError):
    """The pixel data cannot be decoded; the message says why (pydicom's own, which lists
    what each decoder plugin would need)."""


@dataclass
class Image:
    """One decoded frame: ``data`` is float32 of shape (rows, columns) or (rows, columns,
    samples), in modality units for monochrome images and RGB for colour ones."""

    rows: int
    columns: int
    frames: int
    samples: int
    photometric: str
    pixel_spacing: list[float] | None
    window: tuple[float, float] | None
    data: np.ndarray

    @classmethod
    def from_struct(cls, row: dict, dtype: type = np.float32) -> Image:
        """The image of an image struct (``dicom_image``'s fields, as a dict).

        >>> Image.from_struct({"rows": 1, "columns": 2, "data": [0.0, 1.0]}).data.shape
        (1, 2)
        """
        samples = row.get("samples") or 1
        shape = (row["rows"], row["columns"]) + ((samples,) if samples > 1 else ())
        return cls(
            rows=row["rows"],
            columns=row["columns"],
            frames=row.get("frames") or 1,
            samples=samples,
            photometric=row.get("photometric") or "MONOCHROME2",
            pixel_spacing=row.get("pixel_spacing"),
            window=tuple(row["window"]) if row.get("window") else None,
            data=np.asarray(row["data"], dtype=dtype).reshape(shape),
        )

    def struct(self) -> dict:
        """This image as an image struct's fields (the values flat, row by row)."""
        return {
            "rows": self.rows,
            "columns": self.columns,
            "frames": self.frames,
            "samples": self.samples,
            "photometric": self.photometric,
            "pixel_spacing": self.pixel_spacing,
            "window": list(self.window) if self.window else None,
            "data": self.data.ravel(),
        }


def _frames(dataset: Dataset) -> int:
    return int(dataset.get("NumberOfFrames") or 1)


def _first(value: object) -> float | None:
    if value is None or value == "":
        return None
    return (
        float(value[0])
        if isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"
        else float(value)
    )


def file_window(dataset: Dataset) -> tuple[float, float] | None:
    """The file's first (WindowCenter, WindowWidth), if it has one."""
    center, width = _first(dataset.get("WindowCenter")), _first(dataset.get("WindowWidth"))
    return (center, width) if center is not None and width is not None and width > 0 else None


def _decode_error(dataset: Dataset, exc: Exception) -> DecodeError:
    syntax = dataset.file_meta.get("TransferSyntaxUID") if hasattr(dataset, "file_meta") else None
    if syntax is None:
        return DecodeError(f"{type(exc).__name__}: {exc}")
    name = getattr(syntax, "name", str(syntax))
    return DecodeError(
        f"{name} ({syntax}): {type(exc).__name__}: {_one_line(str(exc)) or type(exc).__name__}"
    )


def _one_line(message: str) -> str:
    """pydicom's message on one line: the lines after the first (one per decoder plugin and
    what it lacks) joined with "; ".

    >>> _one_line("Unable to decompress: all plugins are missing dependencies:\\n\\tgdcm - requires gdcm\\n\\tpillow - requires pillow")
    'Unable to decompress: all plugins are missing dependencies: gdcm - requires gdcm; pillow - requires pillow'
    """
    first, *rest = [line.strip() for line in message.strip().splitlines() if line.strip()] or [""]
    return " ".join([first, "; ".join(rest)]) if rest else first


def decode(
    source: PixelSource, frame: int = 0, *, invert: bool = False, dtype: type = np.float32
) -> Image:
    """Frame ``frame`` (0-based) of a DICOM file, decoded (see the module docs), as ``dtype``
    (float32, what SQL arrays hold; float64 spares a conversion for computations).

    ``invert`` mirrors the values within their range (``min + max - value``), e.g. to show a
    MONOCHROME1 image the usual way round. Raises ``IndexError`` for a frame that does not
    exist and :class:`DecodeError` saying why when the pixel data cannot be decoded.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    if isinstance(source, (str, os.PathLike)):
        with open(source, "rb") as fp:
            head = fp.read(132)
    else:
        head = source.read(132)
        source.seek(0)
    if not looks_like_dicom(head):
        raise DecodeError("not a DICOM file")
    dataset = dcmread(source, force=True)
    if (
        "PixelData" not in dataset
        and "FloatPixelData" not in dataset
        and "DoubleFloatPixelData" not in dataset
    ):
        raise DecodeError("the file has no pixel data")
    frames = _frames(dataset)
    if not 0 <= frame < frames:
        raise IndexError(f"frame {frame} out of range: the file has {frames} frame(s)")
    try:
        values = pixel_array(dataset, index=frame)
    except Exception as exc:  # noqa: BLE001 - the decoders raise many types
        raise _decode_error(dataset, exc) from None
    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    if photometric == "PALETTE COLOR":
        values, samples = apply_color_lut(values, dataset), 3
    elif int(dataset.get("SamplesPerPixel") or 1) == 1:
        values, samples = apply_modality_lut(values, dataset), 1
    else:
        samples = values.shape[-1]
    data = np.asarray(values, dtype=dtype)
    if invert:
        data = data.min() + data.max() - data
    spacing = dataset.get("PixelSpacing")
    return Image(
        rows=data.shape[0],
        columns=data.shape[1],
        frames=frames,
        samples=samples,
        photometric=photometric,
        pixel_spacing=[float(v) for v in spacing] if spacing else None,
        window=file_window(dataset),
        data=data,
    )


def window(values: np.ndarray, center: float, width: float) -> np.ndarray:
    """The DICOM linear VOI window (PS3.3 C.11.2.1.2.1) mapped to [0, 1].

    >>> [round(float(v), 3) for v in window(np.array([-2000.0, 40.0, 2000.0]), 40.0, 400.0)]
    [0.0, 0.501, 1.0]
    """
    if width < 1:
        raise ValueError(f"a window width must be >= 1, got {width}")
    values = np.asarray(values, dtype=np.float64)
    if width == 1:
        return (values > center - 0.5).astype(np.float32)
    scaled = (values - (center - 0.5)) / (width - 1) + 0.5
    return np.clip(scaled, 0.0, 1.0).astype(np.float32)


def display_window(image: Image, preset: str | None = None) -> tuple[float, float]:
    """The window to show ``image`` with: a preset by name, else the file's own, else the
    image's value range."""
    if preset is not None:
        if preset not in WINDOW_PRESETS:
            raise KeyError(f"unknown window preset {preset!r} (known: {', '.join(WINDOW_PRESETS)})")
        return WINDOW_PRESETS[preset]
    if image.window is not None:
        return image.window
    low, high = float(image.data.min()), float(image.data.max())
    return (low + high) / 2, max(high - low, 1.0)


def to_8bit(image: Image, preset: str | None = None) -> np.ndarray:
    """The image as 8-bit values to show: monochrome windowed (see :func:`to_png`), colour scaled."""
    if image.samples == 1:
        shown = window(image.data, *display_window(image, preset))
        if image.photometric == "MONOCHROME1":  # high values are dark
            shown = 1.0 - shown
        return np.round(shown * 255).astype(np.uint8)
    top = (
        255.0
        if image.data.max() <= 255
        else float(2 ** int(np.ceil(np.log2(image.data.max() + 1))) - 1)
    )
    return np.round(np.clip(image.data / top, 0, 1) * 255).astype(np.uint8)


def to_png(image: Image, size: int = 256, preset: str | None = None) -> bytes:
    """A PNG thumbnail: windowed (``preset``, else the file's window, else the value range),
    scaled so its longest side is ``size`` pixels (aspect ratio kept)."""
    from PIL import Image as PILImage

    if size < 1:
        raise ValueError(f"size must be >= 1, got {size}")
    picture = PILImage.fromarray(to_8bit(image, preset))
    scale = size / max(image.rows, image.columns)
    shape = (max(1, round(image.columns * scale)), max(1, round(image.rows * scale)))
    if shape != picture.size:
        picture = picture.resize(
            shape, PILImage.Resampling.LANCZOS if scale < 1 else PILImage.Resampling.BILINEAR
        )
    buffer = io.BytesIO()
    picture.save(buffer, format="PNG", optimize=False)
    return buffer.getvalue()
