"""Notebook plots with matplotlib: thumbnail grids, eigen-images, Kaplan-Meier curves.

Each function takes query results as they come (a Spark or pandas DataFrame, or a list of
Rows or dicts; structs as Rows, dicts, or the JSON text JDBC clients such as JupySQL get) and
returns the matplotlib Figure. Install matplotlib with the ``plot``
extra (``pip install dicomsql[plot]``).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

import numpy as np

from .dicom import pixels

__all__ = ["images", "eigenimages", "km"]


def _pyplot():
    try:
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - depends on the environment
        raise ImportError("dicomsql.plot needs matplotlib: pip install 'dicomsql[plot]'") from None
    return plt


def _records(rows: Any, limit: int) -> list[dict[str, Any]]:
    """Query results as a list of dicts (a Spark DataFrame is limited before collecting)."""
    if hasattr(rows, "limit") and hasattr(rows, "collect"):  # Spark DataFrame
        rows = rows.limit(limit).collect()
    elif hasattr(rows, "to_dict") and hasattr(rows, "columns"):  # pandas DataFrame
        rows = rows.head(limit).to_dict("records")
    elif hasattr(rows, "DataFrame"):  # a JupySQL result set
        rows = rows.DataFrame().head(limit).to_dict("records")
    return [
        row.asDict(recursive=True) if hasattr(row, "asDict") else dict(row)
        for row in list(rows)[:limit]
    ]


def _structure(value: Any) -> Any:
    """A struct as a dict, whether a Spark Row, a dict, or the JSON text JDBC clients get
    (anything else unchanged).

    >>> _structure('{"n": 2, "mean": [0.5]}'), _structure("/data/a.dcm")
    ({'n': 2, 'mean': [0.5]}, '/data/a.dcm')
    """
    if hasattr(value, "asDict"):
        return value.asDict(recursive=True)
    if isinstance(value, str) and value.lstrip().startswith("{"):
        return json.loads(value)
    return value


def _picture(value: Any, window: str | None) -> np.ndarray:
    """An array to show from an image struct, PNG bytes, or a DICOM path or bytes."""
    value = _structure(value)
    if isinstance(value, dict) and value.get("data") is not None:
        image = pixels.Image.from_struct(value)
    elif isinstance(value, (bytes, bytearray)) and bytes(value[:8]) == b"\x89PNG\r\n\x1a\n":
        from PIL import Image as PILImage

        return np.asarray(PILImage.open(io.BytesIO(bytes(value))))
    else:
        image = pixels.decode(value if isinstance(value, (bytes, bytearray)) else str(value))
    return pixels.to_8bit(image, window)


def images(
    rows: Any,
    image: str = "image",
    caption: str | Sequence[str] | None = None,
    columns: int = 4,
    size: float = 3.0,
    window: str | None = None,
    limit: int = 64,
):
    """A grid of images with captions.

    ``image`` names the column holding each picture: an image struct (``dicom_image``,
    ``image_resize``), PNG bytes (``dicom_png``) or a DICOM path or bytes. ``caption`` names
    one or more columns written under each picture. ``window`` is a preset name for
    monochrome images (default: the file's window).
    """
    plt = _pyplot()
    records = _records(rows, limit)
    captions = [caption] if isinstance(caption, str) else list(caption or [])
    count = max(len(records), 1)
    grid_columns = min(columns, count)
    grid_rows = math.ceil(count / grid_columns)
    figure, axes = plt.subplots(
        grid_rows, grid_columns, figsize=(size * grid_columns, size * grid_rows), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    for axis, record in zip(axes.ravel(), records):
        picture = _picture(record[image], window)
        axis.imshow(picture, cmap="gray" if picture.ndim == 2 else None, vmin=0, vmax=255)
        if captions:
            axis.set_title("\n".join(str(record.get(name)) for name in captions), fontsize=8)
    figure.tight_layout()
    return figure


def eigenimages(
    model: Any, shape: Sequence[int], count: int | None = None, columns: int = 4, size: float = 2.5
):
    """The components of a ``pca_fit`` model as images of ``shape`` (rows, columns), with
    their share of the variance; the mean image first."""
    plt = _pyplot()
    fitted = dict(_structure(model))
    components = np.asarray(fitted["components"], dtype=float)[:count]
    ratios = fitted.get("explained_variance_ratio") or [None] * len(components)
    panels = [("mean", np.asarray(fitted["mean"], dtype=float))] + [
        (f"component {i + 1}" + (f" ({ratio:.1%})" if ratio is not None else ""), vector)
        for i, (vector, ratio) in enumerate(zip(components, ratios))
    ]
    grid_columns = min(columns, len(panels))
    grid_rows = math.ceil(len(panels) / grid_columns)
    figure, axes = plt.subplots(
        grid_rows, grid_columns, figsize=(size * grid_columns, size * grid_rows), squeeze=False
    )
    for axis in axes.ravel():
        axis.axis("off")
    for axis, (title, vector) in zip(axes.ravel(), panels):
        axis.imshow(vector.reshape(tuple(shape)), cmap="gray" if title == "mean" else "RdBu_r")
        axis.set_title(title, fontsize=8)
    figure.tight_layout()
    return figure


def km(curves: Any, label: str | None = None, model: str = "km", band: bool = True, ax=None):
    """Kaplan-Meier curves from ``km_fit`` models: one model, or rows with a ``model``
    column (default ``km``) and a ``label`` column naming each curve (e.g. the rows of
    ``SELECT treated, km_fit(months, died) AS km FROM demo_patients GROUP BY treated``)."""
    plt = _pyplot()
    single = _structure(curves)
    if isinstance(single, dict) and "times" in single:
        pairs: Iterable[tuple[str, dict]] = [("", single)]
    else:
        pairs = [
            (str(r.get(label, "")) if label else "", _structure(r[model]))
            for r in _records(curves, 1000)
        ]
    axis = ax or plt.subplots(figsize=(6, 4))[1]
    for name, fitted in pairs:
        times = np.r_[0.0, fitted["times"]]
        survival = np.r_[1.0, fitted["survival"]]
        line = axis.step(times, survival, where="post", label=name or None)[0]
        if band and fitted.get("ci_lower") is not None:
            axis.fill_between(
                times,
                np.r_[1.0, fitted["ci_lower"]],
                np.r_[1.0, fitted["ci_upper"]],
                step="post",
                alpha=0.2,
                color=line.get_color(),
            )
    axis.set_xlabel("time")
    axis.set_ylabel("survival")
    axis.set_ylim(0, 1.02)
    if any(name for name, _ in pairs):
        axis.legend(title=label)
    return axis.figure
