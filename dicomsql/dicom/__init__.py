"""Pure DICOM code (pydicom, numpy, pyarrow; never pyspark): headers to typed values, the
DICOM JSON model, pixel decoding."""
