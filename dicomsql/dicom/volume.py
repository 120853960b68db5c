"""Series to volume: stack a series' slices along their normal into a regular 3-D array."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

__all__ = ["Slice", "VOLUME_FIELDS", "stack"]

VOLUME_FIELDS: tuple[tuple[str, str], ...] = (
    ("shape", "array<bigint>"),  # slices, rows, columns
    ("spacing", "array<double>"),  # between slices, between rows, between columns (mm)
    ("origin", "array<double>"),  # ImagePositionPatient of the first slice
    ("orientation", "array<double>"),  # ImageOrientationPatient (row, column direction cosines)
    ("data", "array<float>"),  # slices x rows x columns, row-major
    ("error", "string"),
)

_ORIENTATION_TOLERANCE = 1e-4
_SPACING_TOLERANCE = 0.01  # relative


@dataclass
class Slice:
    """One image of a series with its geometry."""

    pixels: np.ndarray  # rows x columns
    position: Sequence[float]  # ImagePositionPatient
    orientation: Sequence[float]  # ImageOrientationPatient
    pixel_spacing: Sequence[float] | None  # PixelSpacing (row, column)


def _refusal(reason: str) -> dict[str, Any]:
    return {name: None for name, _ in VOLUME_FIELDS} | {"error": reason}


def stack(slices: Sequence[Slice]) -> dict[str, Any]:
    """The volume of a series, its slices sorted along the slice normal (the cross product
    of the row and column directions). An inconsistent series (mixed orientations or image
    sizes, missing geometry, two slices at one position, uneven spacing) gives no data and
    the reason in ``error``."""
    if not slices:
        return _refusal("no slices")
    if any(
        s.position is None
        or s.orientation is None
        or len(s.position) != 3
        or len(s.orientation) != 6
        for s in slices
    ):
        return _refusal(
            "every slice needs ImagePositionPatient (3 values) and ImageOrientationPatient (6 values)"
        )
    orientations = np.array([s.orientation for s in slices], dtype=float)
    if np.abs(orientations - orientations[0]).max() > _ORIENTATION_TOLERANCE:
        return _refusal("mixed orientations: the slices are not parallel")
    shapes = {np.asarray(s.pixels).shape for s in slices}
    if len(shapes) > 1:
        return _refusal(f"mixed image sizes: {sorted(shapes)}")
    if len(next(iter(shapes))) != 2:
        return _refusal("needs single-sample (grayscale) images")
    spacings = {tuple(s.pixel_spacing) if s.pixel_spacing is not None else None for s in slices}
    if len(spacings) > 1:
        return _refusal("mixed pixel spacings")
    normal = np.cross(orientations[0][:3], orientations[0][3:])
    distance = np.array([np.dot(s.position, normal) for s in slices])
    order = np.argsort(distance, kind="stable")
    gaps = np.diff(distance[order])
    if len(gaps) and gaps.min() < 1e-6:
        return _refusal("two slices at the same position")
    if len(gaps) and (gaps.max() - gaps.min()) > _SPACING_TOLERANCE * gaps.mean():
        return _refusal(
            f"uneven slice spacing ({gaps.min():.4g} to {gaps.max():.4g} mm): not a regular volume"
        )
    volume = np.stack([np.asarray(slices[i].pixels, dtype=np.float32) for i in order])
    pixel_spacing = next(iter(spacings))
    return {
        "shape": list(volume.shape),
        "spacing": [float(gaps.mean()) if len(gaps) else None, *(float(v) for v in pixel_spacing)]
        if pixel_spacing
        else [float(gaps.mean()) if len(gaps) else None, None, None],
        "origin": [float(v) for v in slices[order[0]].position],
        "orientation": orientations[0].tolist(),
        "data": volume.ravel(),
        "error": None,
    }
