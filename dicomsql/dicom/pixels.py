"""Pixel data: decode one frame and bring it to modality units."""

from __future__ import annotations

import io
import os
from typing import BinaryIO, Union

import numpy as np
from pydicom import dcmread
from pydicom.pixels import apply_modality_lut, pixel_array

__all__ = ["PixelSource", "modality_frame"]

#: A file path, the file's bytes, or an open binary file.
PixelSource = Union[str, "os.PathLike[str]", bytes, BinaryIO]


def modality_frame(source: PixelSource, frame: int = 0) -> np.ndarray:
    """Frame ``frame`` (0-based) of a DICOM file, decoded, in modality units (float32).

    The Modality LUT (Rescale Slope/Intercept, or a Modality LUT Sequence) is applied, so CT
    values are Hounsfield units. Colour images keep their samples as the last axis.
    Raises ``IndexError`` when the frame does not exist.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        source = io.BytesIO(source)
    dataset = dcmread(source, force=True)
    frames = int(dataset.get("NumberOfFrames") or 1)
    if not 0 <= frame < frames:
        raise IndexError(f"frame {frame} out of range: the file has {frames} frame(s)")
    values = pixel_array(dataset, index=frame)
    return apply_modality_lut(values, dataset).astype(np.float32, copy=False)
