"""SQL functions over DICOM headers (the ``meta`` column)."""

from __future__ import annotations

import json

import pyarrow as pa

from dicomsql.dicom.dicomjson import parse_tag, tag_text

from .arrow import Expected, labels
from .registry import column, sql_function


def tags(array: pa.Array) -> list[int | None]:
    """The tags of a ``key`` argument: keywords (``'PatientAge'``) or tags (``'00101010'``)."""
    keys = labels(array)
    parsed = {}
    for key in set(keys) - {None}:
        try:
            parsed[key] = parse_tag(key)
        except KeyError:
            raise Expected(
                "a DICOM keyword (e.g. 'PatientAge') or tag (e.g. '00101010')", repr(key)
            ) from None
    return [None if key is None else parsed[key] for key in keys]


def _model(meta: str) -> dict:
    try:
        model = json.loads(meta)
    except json.JSONDecodeError:
        model = None
    if not isinstance(model, dict):
        raise Expected(
            "DICOM JSON text (the meta column of a DICOM table)", repr(meta[:40]), "meta"
        )
    return model


@sql_function(
    column("meta", "STRING", labels),
    column("key", "STRING", tags),
    returns="STRING",
    example="SELECT dicom_tag(meta, 'PatientAge'), dicom_tag(meta, '(0018,0050)') FROM demo_images",
)
def dicom_tag(meta: list, key: list) -> list:
    """Value of a DICOM attribute, as text, from a DICOM JSON ``meta`` column.

    ``key`` is a keyword (``'PatientAge'``) or a tag (``'00101010'`` or ``'(0010,1010)'``);
    an unknown keyword is an error. Returns NULL when the attribute is absent or empty.
    Several values are joined with a backslash (``'0.5\\0.5'``), person names give their
    alphabetic form, sequences the DICOM JSON of their items.
    """
    return [
        None if text is None or tag is None else tag_text(_model(text), tag)
        for text, tag in zip(meta, key)
    ]
