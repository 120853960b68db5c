"""The ``dicom``, ``tfrecord`` and ``dimse`` Spark data sources (thin: listing, partitioning, Arrow batches; the DICOM
work is in :mod:`dicomsql.dicom`)."""

from .datasource import DicomDataSource
from .dimse import DimseDataSource
from .tfrecord import TfrecordDataSource

__all__ = ["DicomDataSource", "DimseDataSource", "TfrecordDataSource"]
