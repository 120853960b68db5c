"""SQL functions over DICOM headers (the ``meta`` column)."""

from __future__ import annotations

import datetime
import json

import pyarrow as pa

from dicomsql.dicom import deid, export
from dicomsql.dicom.dicomjson import model_json, parse_tag, tag_text
from dicomsql.dicom.header import HeaderColumns
from dicomsql.keys import deid_key

from .arrow import Expected, labels
from .registry import column, constant, options, sql_function


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


@sql_function(
    column("meta", "STRING", labels),
    options(deid.OPTIONS),
    returns="STRING",
    example="SELECT dicom_tag(dicom_deidentify(meta), 'PatientID') FROM demo_images LIMIT 3",
)
def dicom_deidentify(meta: list, options: dict) -> list:
    """A DICOM JSON ``meta`` column de-identified by PS3.15 Annex E: the Basic Application Level
    Confidentiality Profile, and the options of its Table E.1-1 that ``options`` turns on.

    Every attribute the table lists ends as its action says, in sequences too: removed (X),
    emptied (Z), kept (K), a dummy (D: text becomes a keyed pseudonym such as
    ``ANONFLWW65EJ7HZC``, the same for the same value, so a patient's pseudonymous PatientID
    joins across studies), a remapped UID (U: ``2.25.`` and a number from a keyed hash, the same
    in every row and run, so studies, series and references still join) or cleaned (C). Private
    elements are removed unless ``keep_private`` names them. The result says how:
    PatientIdentityRemoved YES, DeidentificationMethod and its code sequence (113100 and the
    options' codes). The key is the server's (``--deid-key-file``), never the query's; the
    table of actions is in docs/deidentification.md.
    """
    key = deid_key()
    return [
        None if text is None else model_json(deid.deidentify(_model(text), options, key))
        for text in meta
    ]


@sql_function(
    column("meta", "STRING", labels),
    returns="BOOLEAN",
    example="SELECT Modality, dicom_burned_in(meta), count(*) FROM demo_images GROUP BY 1, 2",
)
def dicom_burned_in(meta: list) -> list:
    """Whether an image may show identifying text in its pixels, which de-identifying the
    header does not remove: its BurnedInAnnotation is YES, or it says nothing and is a
    secondary capture, an ultrasound, endoscopy or photograph image (SOP class or modality).
    ``dicom_export`` with ``deidentify`` refuses these unless ``allow_burned_in``."""
    return [None if text is None else export.burned_in(_model(text)) for text in meta]


@sql_function(
    column("path", "STRING", labels),
    returns="STRING",
    example="SELECT dicom_image(dicom_file_id(path)).rows FROM demo_images LIMIT 3",
)
def dicom_file_id(path: list) -> list:
    """A stable pseudonymous id of the file at ``path`` (``dicomsql-id:`` and 64 or more
    letters): the same for the same path with the server's key (``--deid-key-file``), and
    only that key turns it back into the path. The pixel functions and ``dicom_export`` take
    it in place of the path; the de-identified views show it as ``id``, never the path."""
    key = deid_key()
    return [None if value is None else deid.file_id(value, key) for value in path]


def _pseudonym_kind(text: str) -> str:
    if text not in ("text", "uid"):
        raise Expected("'text' or 'uid'", repr(text))
    return text


@sql_function(
    column("value", "STRING", labels),
    constant("kind", "STRING", _pseudonym_kind, default="text"),
    returns="STRING",
    example="SELECT dicom_pseudonym(PatientID), age FROM demo_patients LIMIT 3",
)
def dicom_pseudonym(value: list, kind: str) -> list:
    """The keyed pseudonym ``dicom_deidentify`` gives a value, for the columns of clinical
    tables: ``kind`` ``'text'`` (default) gives the dummy of text attributes (a PatientID
    becomes what it becomes in the de-identified headers, so the tables still join), ``'uid'``
    the remapped UID (``2.25.`` and a keyed hash, as a StudyInstanceUID is remapped)."""
    key = deid_key()
    change = deid.pseudonym if kind == "text" else deid.remap_uid
    return [None if text is None else change(str(text), key) for text in value]


def _typed_columns(text: str) -> HeaderColumns:
    try:
        return HeaderColumns.named([key.strip() for key in text.split(",") if key.strip()])
    except ValueError as exc:
        raise Expected("a comma-separated list of attribute keywords", str(exc)) from None


def _json_value(value: datetime.date) -> str:
    """A date or a (UTC) timestamp as from_json reads it."""
    if isinstance(value, datetime.datetime) and value.tzinfo is None:
        return value.isoformat() + "Z"
    return value.isoformat()


@sql_function(
    column("meta", "STRING", labels),
    constant("keywords", "STRING", _typed_columns),
    returns="STRING",
    example="SELECT from_json(dicom_typed(meta, 'StudyDate, Rows'), 'StudyDate DATE, Rows BIGINT') "
    "FROM demo_images LIMIT 3",
)
def dicom_typed(meta: list, keywords: HeaderColumns) -> list:
    """The typed values of these attributes (comma-separated keywords) as the ``dicom``
    source's columns hold them, as JSON for ``from_json`` with their types: how a view
    recomputes typed columns from a changed ``meta`` (a de-identified one, say). Values that
    do not parse are NULL; ``PatientAge`` brings ``PatientAgeYears``."""
    results = []
    for text in meta:
        if text is None:
            results.append(None)
            continue
        values, _problems = keywords.values(_model(text))
        results.append(json.dumps(dict(zip(keywords.names, values)), default=_json_value))
    return results
