"""The ``dimse`` Spark data source: a PACS's answers to a C-FIND as a table, with the typed
columns of the ``dicom`` source (the work is :mod:`dicomsql.pacs`)::

    CREATE TEMPORARY VIEW pacs USING dimse OPTIONS (host '10.0.0.5', port '104',
      called_ae 'PACS', calling_ae 'DICOMSQL', level 'SERIES', query '{"Modality": "CT"}')

Each row is one study, series or instance the query matches: ``path`` is its address
(``dimse://PACS@host:port/STUDY[/SERIES[/SOP]]``), ``size`` and ``modificationTime`` are
NULL, then the typed columns (``tags``), ``meta`` (the identifier as DICOM JSON),
``_warnings`` and ``_corrupt_record``. The query runs when the table is read, once, on one
executor; a PACS that cannot be reached or refuses is the query's error, naming it.
``dicomsql pull`` retrieves the instances themselves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from functools import cached_property
from typing import TYPE_CHECKING, Any

from pyspark.sql.datasource import DataSource, DataSourceReader, InputPartition
from pyspark.sql.types import StructType

from .. import pacs
from ..dicom.header import HeaderColumns, dataset_record
from ..errors import DicomsqlError
from ..options import Option, choice, integer, number, parse
from .datasource import TableLayout, _BatchBuilder
from .options import OPTIONS as DICOM_OPTIONS

if TYPE_CHECKING:
    import pyarrow

__all__ = ["DimseDataSource", "OPTIONS"]


def _query(text: str) -> dict[str, Any]:
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if not isinstance(value, dict):
        raise ValueError('a JSON object of matching keys, e.g. {"PatientID": "1CT1"}')
    return value


OPTIONS: tuple[Option, ...] = (
    Option("host", None, "Required: the PACS's host name or address."),
    Option("port", None, "Required: its DICOM port.", parse=integer(1, 65535)),
    Option("called_ae", None, "Required: its AE title."),
    Option(
        "calling_ae",
        "DICOMSQL",
        "dicomsql's AE title, as the PACS knows it (a PACS answers only the AE titles it registered).",
    ),
    Option(
        "level",
        "STUDY",
        "One row per STUDY, SERIES or IMAGE (instance) matched (Study Root information model).",
        parse=choice(*pacs.LEVELS, normalise=str.upper),
    ),
    Option(
        "query",
        {},
        'The matching keys as a JSON object by keyword, e.g. {"PatientID": "1CT*", '
        '"StudyDate": "20240101-20241231"} (DICOM wildcards, ranges and UID lists). Default: all.',
        parse=_query,
    ),
    Option(
        "timeout",
        30.0,
        "Seconds the PACS may take to answer (connect, associate, each response).",
        parse=number(0.1, 3600),
    ),
    *(option for option in DICOM_OPTIONS if option.name == "tags"),
)


@dataclass(frozen=True)
class _Query(InputPartition):
    peer: pacs.Peer
    level: str
    query: Mapping[str, Any]


class DimseDataSource(DataSource):
    """Spark data source ``dimse`` (see the module's documentation)."""

    @classmethod
    def name(cls) -> str:
        return "dimse"

    @cached_property
    def parsed(self) -> dict[str, Any]:
        values = parse(self.options, OPTIONS, where="dimse source")
        for required in ("host", "port", "called_ae"):
            if values[required] is None:
                raise DicomsqlError(
                    f"dimse source: option {required} is required, e.g. CREATE TEMPORARY VIEW "
                    "pacs USING dimse OPTIONS (host 'pacs', port '104', called_ae 'PACS')"
                )
        if values["tags"] == "all":
            raise DicomsqlError("dimse source: option tags: core or a list of keywords")
        try:
            values["peer"] = pacs.Peer(
                values["host"],
                values["port"],
                values["called_ae"],
                values["calling_ae"],
                values["timeout"],
            )
        except ValueError as exc:
            raise DicomsqlError(f"dimse source: {exc}") from None
        return values

    def _columns(self) -> HeaderColumns:
        tags = self.parsed["tags"]
        if tags == "core":
            return HeaderColumns.core()
        try:
            return HeaderColumns.named(tags)
        except ValueError as exc:
            raise DicomsqlError(f"dimse source: option tags: {exc}") from None

    def schema(self) -> str:
        return TableLayout(self._columns()).ddl()

    def reader(self, schema: StructType) -> DimseReader:
        return DimseReader(self.parsed, TableLayout(self._columns()), schema)


@dataclass
class DimseReader(DataSourceReader):
    """One partition: the C-FIND, whose answers become Arrow record batches."""

    options: dict[str, Any]
    layout: TableLayout
    schema: StructType

    def partitions(self) -> list[_Query]:
        return [_Query(self.options["peer"], self.options["level"], self.options["query"])]

    def read(self, partition: _Query) -> Iterator[pyarrow.RecordBatch]:
        from pyspark.sql.pandas.types import to_arrow_schema

        try:
            answers = pacs.find(partition.peer, partition.level, partition.query)
        except ValueError as exc:
            raise DicomsqlError(f"dimse source: {exc}") from None
        batches = _BatchBuilder(to_arrow_schema(self.schema, timezone="UTC"))
        peer = partition.peer
        for answer in answers:
            keys = ("StudyInstanceUID", "SeriesInstanceUID", "SOPInstanceUID")
            depth = pacs.LEVELS.index(partition.level) + 1
            uids = "/".join(str(answer.get(key, "")) for key in keys[:depth])
            address = f"dimse://{peer.called_ae}@{peer.host}:{peer.port}/{uids}"
            record = dataset_record(answer, self.layout.columns, address)
            batches.add(
                [
                    address,
                    None,
                    None,
                    *record.values,
                    record.meta,
                    record.warnings or None,
                    record.error,
                ]
            )
        if batches.rows or not answers:
            yield batches.flush()
