"""The ``dicom`` and ``tfrecord`` Spark data sources (thin: listing, partitioning, Arrow batches; the DICOM
work is in :mod:`dicomsql.dicom`)."""

from .datasource import DicomDataSource
from .tfrecord import TfrecordDataSource

__all__ = ["DicomDataSource", "TfrecordDataSource"]
