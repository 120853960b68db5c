"""SQL functions over DICOM headers (the ``meta`` column)."""

from __future__ import annotations

import json

import pandas as pd

from dicomsql.dicom.dicomjson import parse_tag, tag_text
from dicomsql.errors import FunctionArgumentError

from .registry import sql_function


def _tag(key: str) -> int:
    try:
        return parse_tag(key)
    except KeyError:
        raise FunctionArgumentError(
            "dicom_tag", "key", "a DICOM keyword (e.g. 'PatientAge') or tag (e.g. '00101010')",
            repr(key),
        ) from None


@sql_function(
    "meta STRING, key STRING",
    returns="STRING",
    example="SELECT dicom_tag(meta, 'PatientAge'), dicom_tag(meta, '(0018,0050)') FROM demo_images",
)
def dicom_tag(meta: pd.Series, key: pd.Series) -> pd.Series:
    """Value of a DICOM attribute, as text, from a DICOM JSON ``meta`` column.

    ``key`` is a keyword (``'PatientAge'``) or a tag (``'00101010'`` or ``'(0010,1010)'``);
    an unknown keyword is an error. Returns NULL when the attribute is absent or empty.
    Several values are joined with a backslash (``'0.5\\0.5'``), person names give their
    alphabetic form, sequences the DICOM JSON of their items.
    """
    tags = {k: _tag(k) for k in key.dropna().unique()}
    return pd.Series(
        [None if m is None or k is None else tag_text(_model(m), tags[k]) for m, k in zip(meta, key)],
        dtype=object,
    )


def _model(meta: str) -> dict:
    try:
        model = json.loads(meta)
    except json.JSONDecodeError:
        model = None
    if not isinstance(model, dict):
        raise FunctionArgumentError(
            "dicom_tag", "meta", "DICOM JSON text (the meta column of a DICOM table)", repr(meta[:40])
        )
    return model
