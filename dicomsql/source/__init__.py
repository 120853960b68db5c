"""The ``dicom`` Spark data source (thin: listing, partitioning, Arrow batches; the DICOM
work is in :mod:`dicomsql.dicom`)."""

from .datasource import DicomDataSource

__all__ = ["DicomDataSource"]
