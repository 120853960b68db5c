"""The reference files catalogue: the DICOM files the pydicom wheel ships, read from its
``data/test_files`` folder (never ``pydicom.data.get_testdata_files()``: it tries to download
the files it lacks), sorted into what tests need, and the values pydicom itself reads from them.

Test modules take their reference files and expected values from here only (pydicom's own
``tests/pixels/pixels_reference.py`` is the model)."""

from __future__ import annotations

import datetime
import functools
import warnings
from pathlib import Path

import pydicom
from pydicom.dataset import Dataset

from dicomsql.dicom.dicomjson import BULK_DATA_THRESHOLD
from dicomsql.dicom.vr import attribute

#: pydicom's own test files (the folder; ``charset_files`` is its sibling).
PYDICOM_TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"

#: Shipped files that are not readable DICOM images, and why (substring of the reason).
BROKEN = {
    "MR_truncated.dcm": "truncated: pixel data",
    "rtplan_truncated.dcm": "truncated: element (300A,00B0)",
    "no_meta.dcm": "not a DICOM file",  # pydicom itself reads a single garbage element from it
    "README.txt": "not a DICOM file",
    "crayons.icc": "not a DICOM file",
    "rtplan.dump": "not a DICOM file",
    "rtstruct.dump": "not a DICOM file",
    "test1.json": "not a DICOM file",
    "test_PN.json": "not a DICOM file",
    "zipMR.gz": "not a DICOM file",
}

#: Every file of the folder (sub-folders left out), sorted.
SHIPPED = sorted(p for p in PYDICOM_TEST_FILES.iterdir() if p.is_file())
#: The shipped files a reader must read without error.
READABLE = [p for p in SHIPPED if p.name not in BROKEN]
#: The shipped ``.dcm`` files, broken ones included: what pixel decoding is checked on.
DCM_FILES = sorted(PYDICOM_TEST_FILES.glob("*.dcm"))
#: One file per character set (Specific Character Set) pydicom decodes.
CHARSET_FILES = sorted((PYDICOM_TEST_FILES.parent / "charset_files").glob("*.dcm"))


def transfer_syntax(path: Path) -> str:
    """The name of ``path``'s transfer syntax as pydicom reads it ("no transfer syntax" for a
    file without one or that pydicom cannot read)."""
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            uid = pydicom.dcmread(path, stop_before_pixels=True).file_meta.get("TransferSyntaxUID")
    except Exception:  # noqa: BLE001 - whatever pydicom raises for a broken file
        uid = None
    return uid.name if uid else "no transfer syntax"


@functools.cache
def by_transfer_syntax() -> dict[str, list[Path]]:
    """The shipped ``.dcm`` files grouped by transfer syntax name."""
    groups: dict[str, list[Path]] = {}
    for path in DCM_FILES:
        groups.setdefault(transfer_syntax(path), []).append(path)
    return groups


def expected_value(dataset: Dataset, keyword: str):
    """The typed value of ``keyword`` derived directly from pydicom's element value (None when
    absent or empty; a list for a multi-valued attribute). Raises ValueError when pydicom's
    value does not parse as the VR says."""
    source = (
        dataset.file_meta if pydicom.datadict.tag_for_keyword(keyword) >> 16 == 0x0002 else dataset
    )
    if keyword not in source:
        return None
    element = source[keyword]
    if element.value is None or element.value == "":
        return None
    multi_valued = element.VM > 1 or isinstance(element.value, (list, pydicom.multival.MultiValue))
    values = list(element.value) if multi_valued else [element.value]
    vr = element.VR
    if any(v == "" for v in values):
        multi = attribute(keyword).multi
        return [None if v == "" else _typed([v], vr)[0] for v in values] if multi else None
    values = _typed(values, vr)
    return values if attribute(keyword).multi else values[0]


def _typed(values: list, vr: str) -> list:
    if vr == "DA":  # the ACR-NEMA form YYYY.MM.DD is read too
        return [
            datetime.datetime.strptime(str(v).replace(".", ""), "%Y%m%d").date() for v in values
        ]
    if vr in ("DS", "FD", "FL"):
        return [float(v) for v in values]
    if vr in ("IS", "US", "SS", "UL", "SL", "SV", "UV"):
        return [int(v) for v in values]
    if vr == "AT":
        return [f"{int(v):08X}" for v in values]
    return [str(v) for v in values]


def reference_model(path) -> tuple[dict, set[str]]:
    """pydicom's to_json_dict of ``path``, element by element (file meta first); and the
    elements it cannot encode."""
    dataset = pydicom.dcmread(path, stop_before_pixels=True, force=True)
    model, failing = {}, set()
    for part in (dataset.file_meta, dataset):
        for tag in part.keys():
            try:
                model[f"{tag:08X}"] = part[tag].to_json_dict(
                    lambda element: str(path), BULK_DATA_THRESHOLD
                )
            except Exception:  # noqa: BLE001 - whatever pydicom raises for a bad value
                failing.add(f"{tag:08X}")
    return model, failing
