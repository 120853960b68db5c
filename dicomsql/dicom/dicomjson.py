"""The DICOM JSON model (PS3.18 F.2): the ``meta`` column and reading values back from it.

``meta`` is pydicom's :meth:`~pydicom.dataset.Dataset.to_json_dict` of the file meta
information (group 0002, so ``TransferSyntaxUID`` is there too) followed by that of the
dataset, serialised compactly with non-ASCII text kept as is. Numbers (IS, DS, US, FD...) are
JSON numbers, as the model says. Pixel data is never read; any other binary value longer
than :data:`BULK_DATA_THRESHOLD` bytes is left out and replaced by a ``BulkDataURI`` naming
the file it came from.
"""

from __future__ import annotations

import json
import re
from typing import Any

from pydicom import datadict
from pydicom.dataset import Dataset

__all__ = ["BULK_DATA_THRESHOLD", "dataset_json", "parse_tag", "tag_text"]

#: Binary values longer than this many bytes stay out of ``meta``.
BULK_DATA_THRESHOLD = 1024


def dataset_json(dataset: Dataset, source_uri: str = "") -> tuple[str, list[str]]:
    """The DICOM JSON text of ``dataset`` and warnings about elements that had to be left out.

    Bulk binary values are replaced by ``{"vr": ..., "BulkDataURI": source_uri}``. An element
    whose value is invalid in its VR (pydicom cannot encode it) is left out and named in a
    warning, so one bad value never loses the rest of the header.
    """

    model: dict[str, Any] = {}
    problems: list[str] = []
    for part in (getattr(dataset, "file_meta", None), dataset):
        if part is None:
            continue
        part_model, part_problems = _json_dict(part, source_uri)
        model.update(part_model)
        problems += part_problems
    return json.dumps(model, ensure_ascii=False, separators=(",", ":")), problems


def _json_dict(dataset: Dataset, source_uri: str) -> tuple[dict[str, Any], list[str]]:
    def bulk_data_uri(_element: Any) -> str:
        return source_uri

    try:
        return dataset.to_json_dict(BULK_DATA_THRESHOLD, bulk_data_uri), []
    except Exception:  # noqa: BLE001 - pydicom raises what the bad value raises
        model = dataset.to_json_dict(BULK_DATA_THRESHOLD, bulk_data_uri, suppress_invalid_tags=True)
        left_out = sorted({f"{int(tag):08X}" for tag in dataset.keys()} - model.keys())
        return model, [f"meta: left out invalid element(s) {', '.join(left_out)}"]


_TAG_FORMS = (
    re.compile(r"^\(?\s*([0-9A-Fa-f]{4})\s*,\s*([0-9A-Fa-f]{4})\s*\)?$"),  # (0010,1010)
    re.compile(r"^([0-9A-Fa-f]{4})([0-9A-Fa-f]{4})$"),  # 00101010
)


def parse_tag(key: str) -> int:
    """The tag named by a keyword (``'PatientAge'``) or a tag (``'00101010'``, ``'(0010,1010)'``).

    >>> hex(parse_tag("PatientAge")), hex(parse_tag("(0010,1010)")), hex(parse_tag("00101010"))
    ('0x101010', '0x101010', '0x101010')

    Raises ``KeyError`` naming the key when it is neither a known keyword nor a tag.
    """
    text = key.strip()
    for form in _TAG_FORMS:
        match = form.match(text)
        if match:
            return int(match.group(1) + match.group(2), 16)
    tag = datadict.tag_for_keyword(text)
    if tag is None:
        raise KeyError(f"unknown DICOM keyword {key!r}")
    return tag


def tag_text(model: dict[str, Any], tag: int) -> str | None:
    """The value of ``tag`` in a parsed DICOM JSON ``model`` as text, or None if absent/empty.

    Several values are joined with ``\\`` (DICOM's own separator); person names give their
    alphabetic form; a sequence gives the JSON of its items; binary values give their base64
    ``InlineBinary`` text or ``BulkDataURI``.

    >>> tag_text({"00280030": {"vr": "DS", "Value": [0.5, 0.5]}}, 0x00280030)
    '0.5\\\\0.5'
    """
    element = model.get(f"{tag:08X}")
    if element is None:
        return None
    for binary_key in ("InlineBinary", "BulkDataURI"):
        if binary_key in element:
            return element[binary_key]
    values = element.get("Value")
    if not values:
        return None
    if element.get("vr") == "SQ":
        return json.dumps(values, ensure_ascii=False, separators=(",", ":"))
    return "\\".join(_value_text(value) for value in values)


def _value_text(value: Any) -> str:
    if isinstance(value, dict):  # PN: {"Alphabetic": ..., "Ideographic": ...}
        return value.get("Alphabetic", "")
    if value is None:
        return ""
    return str(value)
