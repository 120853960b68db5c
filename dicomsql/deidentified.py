"""The de-identified views: what an account of the ``deidentified`` role sees.

``dicomsql serve --deidentified-views`` builds, beside the served session, a session of its
own whose temporary views have the served views' names and de-identified contents; the
role's client sessions are clones of it, so the raw views are not there to be named.

- A DICOM table (a view with ``path`` and ``meta``) becomes: ``id`` (``dicom_file_id(path)``,
  which the pixel functions take instead of the path), ``size``, every typed column (those
  ``dicom_deidentify`` changes recomputed from the de-identified header, the others as they
  are), ``meta`` de-identified, and the corrupt record column saying only whether the file was
  unreadable. ``modificationTime``, ``content`` and ``_warnings`` are left out.
- Any other view (clinical tables, the bootstrap's views) keeps its columns, except: a column
  named after an attribute the profile changes gets what the headers get (a UID remapped, a
  text dummy as its keyed pseudonym, anything else NULL), so a pseudonymous PatientID joins
  the de-identified images; the columns an admin names identifying (``--identifying-column
  TABLE.COLUMN``) become keyed pseudonyms; a ``path`` column becomes ``id``.

Catalog views stay views over their catalogs (a refresh shows at the next query); the others
are the served view's plan as it is when the server starts. The live sources
(``NAME__files``) are not de-identified views: they are left out.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from pydicom.datadict import dictionary_VR, tag_for_keyword

from .dicom.deid import OPTIONS, changed_keywords, resolved_actions
from .options import parse
from .sqltools import identifier, string_literal

__all__ = ["DICOM_LEFT_OUT", "dicom_view_selects", "other_view_select", "deidentified_session"]

#: Columns of a DICOM table the de-identified view leaves out: the file's modification time
#: (when it was acquired, near enough), its bytes (the raw header) and the warnings (values).
DICOM_LEFT_OUT = frozenset({"modificationTime", "content", "_warnings"})
_UID_VRS = frozenset({"UI"})
_TEXT_VRS = frozenset({"LO", "SH", "PN", "CS", "LT", "ST", "UT", "UC", "AE"})


def _options_map(options: Mapping[str, Any]) -> str:
    given = [(name, value) for name, value in options.items() if value not in (None, "")]
    if not given:
        return ""
    pairs = ", ".join(f"{string_literal(k)}, {string_literal(str(v))}" for k, v in given)
    return f", map({pairs})"


def dicom_view_selects(
    fields: Sequence[tuple[str, str]], options: Mapping[str, Any], corrupt: str = "_corrupt_record"
) -> list[list[str]]:
    """The select lists, innermost first, that make a DICOM table's columns ``fields``
    ((name, Spark DDL)) de-identified under ``dicom_deidentify``'s ``options``.

    >>> for exprs in dicom_view_selects([("path", "STRING"), ("PatientID", "STRING"),
    ...     ("Modality", "STRING"), ("meta", "STRING"), ("_corrupt_record", "STRING")], {}):
    ...     print(", ".join(exprs))
    *, dicom_deidentify(`meta`) AS `__deidentified`
    *, from_json(dicom_typed(`__deidentified`, 'PatientID'), '`PatientID` STRING') AS `__typed`
    dicom_file_id(`path`) AS `id`, `__typed`.`PatientID` AS `PatientID`, `Modality`, `__deidentified` AS `meta`, IF(`_corrupt_record` IS NULL, NULL, 'unreadable file') AS `_corrupt_record`
    """
    parse(options, OPTIONS, where="--deidentify-option")  # a bad option fails at start
    names = [name for name, _ in fields]
    keywords = [
        n for n in names if n not in ("path", "size", "meta", corrupt) and tag_for_keyword(n)
    ]
    changed = changed_keywords(keywords, options)
    if "PatientAgeYears" in names and "PatientAge" in changed:
        changed.add("PatientAgeYears")
    typed = [(name, ddl) for name, ddl in fields if name in changed]
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
    final = []
    for name, _ddl in fields:
        column = identifier(name)
        if name == "path":
            final.append(f"dicom_file_id({column}) AS `id`")
        elif name == "meta":
            final.append(f"`__deidentified` AS {column}")
        elif name == corrupt:
            final.append(f"IF({column} IS NULL, NULL, 'unreadable file') AS {column}")
        elif name in changed:
            final.append(f"`__typed`.{column} AS {column}")
        elif name not in DICOM_LEFT_OUT:
            final.append(column)
    selects.append(final)
    return selects


def other_view_select(
    names: Iterable[str], options: Mapping[str, Any], identifying: Iterable[str] = ()
) -> list[str]:
    """The select list de-identifying a view that is not a DICOM table, of columns ``names``;
    ``identifying`` names (case-insensitive) columns made keyed pseudonyms.

    >>> other_view_select(["PatientID", "age", "SeriesInstanceUID", "PatientBirthDate", "mrn"], {}, ["MRN"])
    ['dicom_pseudonym(`PatientID`) AS `PatientID`', '`age`', "dicom_pseudonym(`SeriesInstanceUID`, 'uid') AS `SeriesInstanceUID`", 'CAST(NULL AS STRING) AS `PatientBirthDate`', 'dicom_pseudonym(`mrn`) AS `mrn`']
    """
    names = list(names)
    identifying = {name.lower() for name in identifying}
    changed = changed_keywords([n for n in names if tag_for_keyword(n)], options)
    select = []
    for name in names:
        column = identifier(name)
        if name == "path":
            select.append(f"dicom_file_id({column}) AS `id`")
        elif name.lower() in identifying:
            select.append(f"dicom_pseudonym({column}) AS {column}")
        elif name in changed:
            vr = dictionary_VR(tag_for_keyword(name))
            if vr in _UID_VRS:
                select.append(f"dicom_pseudonym({column}, 'uid') AS {column}")
            elif vr in _TEXT_VRS and _dummied(name, options):
                select.append(f"dicom_pseudonym({column}) AS {column}")
            else:
                select.append(f"CAST(NULL AS STRING) AS {column}")
        else:
            select.append(column)
    return select


def _dummied(keyword: str, options: Mapping[str, Any]) -> bool:
    """Whether the profile replaces this text attribute by its dummy (its keyed pseudonym)."""
    return resolved_actions(options).get(f"{tag_for_keyword(keyword):08X}") == "D"


def deidentified_session(
    spark: Any,
    catalogs: Mapping[str, str],
    options: Mapping[str, Any] | None = None,
    identifying: Iterable[str] = (),
) -> tuple[Any, frozenset[str]]:
    """A clone of the served session ``spark`` whose temporary views are the served ones
    de-identified (the module's rules), and their names. ``catalogs`` maps a served view's
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
        raw = session.table(identifier(name))
        if name.lower() in live_sources:
            continue
        fields = [(f.name, f.dataType.simpleString().upper()) for f in raw.schema.fields]
        names = [n for n, _ in fields]
        if "path" in names and "meta" in names:
            selects = dicom_view_selects(fields, options)
        else:
            selects = [other_view_select(names, options, by_table.get(name.lower(), ()))]
        catalog = catalogs.get(name.lower())
        if catalog is not None:  # SQL over the catalog: each query reads its latest refresh
            sql = ".".join(identifier(part) for part in catalog.split("."))
            for depth, exprs in enumerate(selects):
                sql = f"SELECT {', '.join(exprs)} FROM {f'({sql})' if depth else sql}"
            made.append((name, sql))
        else:
            frame = raw
            for exprs in selects:
                frame = frame.selectExpr(*exprs)
            made.append((name, frame))
    for name in views:
        session.catalog.dropTempView(name)
    for name, view in made:
        if isinstance(view, str):
            session.sql(f"CREATE TEMPORARY VIEW {identifier(name)} AS {view}")
        else:
            view.createTempView(name)
    return session, frozenset(name.lower() for name, _ in made)
