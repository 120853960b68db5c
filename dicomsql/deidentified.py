"""The de-identified views: what an account of the ``deidentified`` role sees.

``dicomsql serve --deidentified-views`` builds, beside the served session, a session of its
own whose temporary views have the served views' names and de-identified contents; the
role's client sessions are clones of it, so the raw views are not there to be named.

- A DICOM table (a view with the ``dicom`` source's ``path``, ``meta`` and ``_warnings``)
  becomes: ``id`` (``dicom_file_id(path)``, which the pixel functions take instead of the
  path), ``size``, every typed column recomputed from the de-identified header (sequences
  de-identified inside), ``meta`` de-identified, and the corrupt record column saying only
  whether the file was unreadable. ``modificationTime``, ``content`` and ``_warnings`` are
  left out.
- Any other view (clinical tables, the bootstrap's views) keeps its columns, except: a column
  named after an attribute the profile changes (in any case, with or without underscores)
  gets what the headers get (a UID remapped, a text dummy as its keyed pseudonym, a DATE
  shifted by the row's patient's shift under ``date_shift``, anything else NULL), so a
  pseudonymous PatientID and a shifted StudyDate join the de-identified images; the columns an
  admin names identifying (``--identifying-column TABLE.COLUMN``, checked to exist) become
  keyed pseudonyms; ``meta`` is de-identified; ``path`` becomes ``id`` and the file columns
  beside it go as above.

The role may not call ``dicom_file_id``, ``dicom_pseudonym``, ``dicom_deidentify`` or
``dicom_export`` itself (:mod:`dicomsql.server.policy`): they would let it test guesses.
Catalog views stay views over their catalogs (a refresh shows at the next query); the others
are the served view's plan as it is when the server starts. The live sources
(``NAME__files``) are not de-identified views: they are left out.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydicom.datadict import DicomDictionary, dictionary_VR, tag_for_keyword

from .dicom.deid import checked_options, resolved_actions
from .errors import DicomsqlError
from .sqltools import identifier, qualified, string_literal

__all__ = ["DICOM_LEFT_OUT", "dicom_view_selects", "other_view_select", "deidentified_session"]

#: File columns a de-identified view leaves out (of a DICOM table, or beside ``path`` in
#: another view): the file's modification time (when it was acquired, near enough), its
#: bytes (the raw header) and the warnings (they quote values).
DICOM_LEFT_OUT = frozenset({"modificationTime", "content", "_warnings"})
_TEXT_VRS = frozenset({"LO", "SH", "PN", "CS", "LT", "ST", "UT", "UC", "AE"})


def _options_map(options: Mapping[str, Any]) -> str:
    given = [(name, value) for name, value in options.items() if value not in (None, "")]
    if not given:
        return ""
    pairs = ", ".join(f"{string_literal(k)}, {string_literal(str(v))}" for k, v in given)
    return f", map({pairs})"


def dicom_view_selects(
    fields: Sequence[tuple[str, str]], options: Mapping[str, Any], identifying: Iterable[str] = ()
) -> list[list[str]]:
    """The select lists, innermost first, that make a DICOM table's columns ``fields``
    ((name, Spark DDL), the corrupt record column last) de-identified under
    ``dicom_deidentify``'s ``options``: every typed column is recomputed from the
    de-identified header (a kept sequence is de-identified inside too), and those named in
    ``identifying`` become keyed pseudonyms. An image that may carry burned-in text
    (``dicom_burned_in``) has no ``id``: its pixels are not served.

    >>> for exprs in dicom_view_selects([("path", "STRING"), ("PatientID", "STRING"),
    ...     ("meta", "STRING"), ("_warnings", "ARRAY<STRING>"), ("bad", "STRING")], {}):
    ...     print(", ".join(exprs))
    *, dicom_deidentify(`meta`) AS `__deidentified`
    *, from_json(dicom_typed(`__deidentified`, 'PatientID'), '`PatientID` STRING') AS `__typed`
    IF(dicom_burned_in(`meta`), NULL, dicom_file_id(`path`)) AS `id`, `__typed`.`PatientID` AS `PatientID`, `__deidentified` AS `meta`, IF(`bad` IS NULL, NULL, 'unreadable file') AS `bad`
    """
    checked_options(options)  # a bad option fails at start, not at the first query
    identifying = {name.lower() for name in identifying}
    corrupt = fields[-1][0]
    typed = [
        (name, ddl)
        for name, ddl in fields[:-1]
        if name == "PatientAgeYears" or (name != "meta" and tag_for_keyword(name) is not None)
    ]
    selects = [["*", f"dicom_deidentify(`meta`{_options_map(options)}) AS `__deidentified`"]]
    if typed:
        asked = ", ".join(n for n, _ in typed if n != "PatientAgeYears")
        schema = ", ".join(f"{identifier(n)} {ddl}" for n, ddl in typed)
        selects.append(
            [
                "*",
                f"from_json(dicom_typed(`__deidentified`, {string_literal(asked)}), "
                f"{string_literal(schema)}) AS `__typed`",
            ]
        )
    typed_names = {name for name, _ in typed}
    final = []
    for name, _ddl in fields:
        column = identifier(name)
        if name == "path":
            final.append(f"IF(dicom_burned_in(`meta`), NULL, dicom_file_id({column})) AS `id`")
        elif name == "meta":
            final.append(f"`__deidentified` AS {column}")
        elif name == corrupt:
            final.append(_unreadable(column))
        elif name.lower() in identifying:
            final.append(f"dicom_pseudonym(CAST(`__typed`.{column} AS STRING)) AS {column}")
        elif name in typed_names:
            final.append(f"`__typed`.{column} AS {column}")
        elif name == "size":
            final.append(column)
        # anything else (modificationTime, content, _warnings) is left out
    selects.append(final)
    return selects


def _unreadable(column: str) -> str:
    return f"IF({column} IS NULL, NULL, 'unreadable file') AS {column}"


def _keyword(name: str) -> str | None:
    """The attribute keyword a column is named after, whatever its case, spaces and
    underscores (``patient_id`` is PatientID), or None."""
    return _KEYWORDS.get(re.sub(r"[^0-9a-z]", "", name.lower()))


_KEYWORDS = {
    keyword.lower(): keyword
    for keyword in (entry[4] for entry in DicomDictionary.values())
    if keyword
}


def other_view_select(
    fields: Sequence[tuple[str, str]], options: Mapping[str, Any], identifying: Iterable[str] = ()
) -> list[str]:
    """The select list de-identifying a view that is not a DICOM table, of columns ``fields``
    ((name, Spark DDL)); ``identifying`` names (case-insensitive) columns made keyed
    pseudonyms. A column named after an attribute (any case, with spaces or underscores)
    that the profile changes gets what the headers get: UIDs remapped, dummied text its
    pseudonym, a DATE under ``date_shift`` its patient's shift, anything else a NULL of its
    type; a ``meta`` column is de-identified; ``path`` becomes ``id``, and beside it ``error``
    and ``_corrupt_record`` say only that the file was unreadable and the file columns of
    :data:`DICOM_LEFT_OUT` go.

    >>> other_view_select([("patient_id", "BIGINT"), ("age", "INT"), ("SeriesInstanceUID", "STRING"),
    ...     ("PatientBirthDate", "DATE"), ("mrn", "STRING")], {}, ["MRN"])
    ['dicom_pseudonym(CAST(`patient_id` AS STRING)) AS `patient_id`', '`age`', "dicom_pseudonym(CAST(`SeriesInstanceUID` AS STRING), 'uid') AS `SeriesInstanceUID`", 'IF(FALSE, `PatientBirthDate`, NULL) AS `PatientBirthDate`', 'dicom_pseudonym(CAST(`mrn` AS STRING)) AS `mrn`']
    """
    names = [name.lower() for name, _ in fields]
    identifying = {name.lower() for name in identifying}
    keywords = {name: _keyword(name) for name, _ in fields}
    actions = resolved_actions(options)
    patient = next((n for n, _ in fields if keywords[n] == "PatientID"), None)
    select = []
    for name, ddl in fields:
        column = identifier(name)
        text = f"CAST({column} AS STRING)"
        keyword = keywords[name]
        tag = tag_for_keyword(keyword) if keyword else None
        action = actions.get(f"{tag:08X}", "K") if tag is not None else "K"
        lower = name.lower()
        if lower == "path":
            select.append(f"dicom_file_id({column}) AS `id`")
        elif lower == "meta":
            select.append(f"dicom_deidentify({column}{_options_map(options)}) AS {column}")
        elif lower in ("error", "_corrupt_record") and "path" in names:
            select.append(_unreadable(column))
        elif name in DICOM_LEFT_OUT and "path" in names:
            continue
        elif lower in identifying:
            select.append(f"dicom_pseudonym({text}) AS {column}")
        elif action != "K":
            vr = dictionary_VR(tag)
            if vr == "UI":
                select.append(f"dicom_pseudonym({text}, 'uid') AS {column}")
            elif vr in _TEXT_VRS and action == "D":
                select.append(f"dicom_pseudonym({text}) AS {column}")
            elif vr == "DA" and action == "C" and ddl == "DATE" and patient:
                shifted = _shifted_date(column, f"{tag:08X}", identifier(patient), options)
                select.append(f"{shifted} AS {column}")
            else:
                select.append(f"IF(FALSE, {column}, NULL) AS {column}")  # NULL of its type
        else:
            select.append(column)
    return select


def _shifted_date(column: str, tag: str, patient: str, options: Mapping[str, Any]) -> str:
    """A DATE column moved as ``date_shift`` moves the headers' dates of the row's patient:
    through ``dicom_deidentify`` of a header holding only the two, so the shift is its own."""
    header = (
        f"to_json(map('00100020', named_struct('vr', 'LO', 'Value', array(CAST({patient} AS STRING))), "
        f"{string_literal(tag)}, named_struct('vr', 'DA', 'Value', array(date_format({column}, 'yyyyMMdd')))))"
    )
    shifted = f"dicom_tag(dicom_deidentify({header}{_options_map(options)}), {string_literal(tag)})"
    return f"to_date({shifted}, 'yyyyMMdd')"


def deidentified_session(
    spark: Any,
    catalogs: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
    identifying: Iterable[str] = (),
) -> Any:
    """A clone of the served session ``spark`` whose temporary views are the served ones
    de-identified (the module's rules). ``catalogs`` maps a served view's
    lower-case name to its catalog (``dicomsql_catalog.ct``); ``identifying`` holds
    ``TABLE.COLUMN`` names made pseudonyms."""
    from .session import cloned

    options = dict(options or {})
    by_table: dict[str, list[str]] = {}
    for name in identifying:
        table, _, column = name.rpartition(".")
        by_table.setdefault(table.lower(), []).append(column)
    session = cloned(spark)
    views = [t.name for t in session.catalog.listTables() if t.isTemporary]
    live_sources = {f"{name.lower()}__files" for name in views}
    made = []
    for name in views:
        if name.lower() in live_sources:  # the raw files of a live view: not de-identified
            continue
        raw = session.table(identifier(name))
        fields = [(f.name, f.dataType.simpleString().upper()) for f in raw.schema.fields]
        names = [n.lower() for n, _ in fields]
        wanted = by_table.pop(name.lower(), [])
        unknown = sorted({c.lower() for c in wanted} - set(names))
        if unknown:
            raise DicomsqlError(f"--identifying-column: {name} has no column {', '.join(unknown)}")
        if {"path", "meta", "_warnings"} <= set(names):  # a DICOM table (dicom source's layout)
            selects = dicom_view_selects(fields, options, wanted)
        else:
            selects = [other_view_select(fields, options, wanted)]
        catalog = catalogs.get(name.lower())
        if catalog is not None:  # SQL over the catalog: each query reads its latest refresh
            sql = qualified(catalog)
            for depth, exprs in enumerate(selects):
                sql = f"SELECT {', '.join(exprs)} FROM {f'({sql})' if depth else sql}"
            made.append((name, sql))
        else:
            frame = raw
            for exprs in selects:
                frame = frame.selectExpr(*exprs)
            made.append((name, frame))
    if by_table:
        raise DicomsqlError(f"--identifying-column: no served view {', '.join(sorted(by_table))}")
    for name in views:
        session.catalog.dropTempView(name)
    for name, view in made:
        if isinstance(view, str):
            session.sql(f"CREATE TEMPORARY VIEW {identifier(name)} AS {view}")
        else:
            view.createTempView(name)
    return session
