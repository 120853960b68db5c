"""DICOM files out: a Part 10 file from a DICOM JSON model and its pixel data.

:func:`part10` builds the file of one row of a DICOM table: the dataset from the row's
``meta`` (DICOM JSON, perhaps de-identified or changed), the pixel data from the original file
(its bytes, as read) or from a derived image (an image struct or an array: then the Image
Pixel module is written to match it), a file meta group of dicomsql's own (the Media Storage
UIDs are the dataset's), in the transfer syntax asked for. Values that ``meta`` holds only by
reference (``BulkDataURI``: binary values above 768 bytes) are read from the original file.

:func:`layout_path` places a file by its attributes, e.g. ``{PatientID}/{StudyInstanceUID}/
{SeriesInstanceUID}/{SOPInstanceUID}.dcm``; :func:`burned_in` tells which images may carry
text in their pixels. Nothing here writes to disk or imports Spark.
"""

from __future__ import annotations

import hashlib
import io
import re
import string
import warnings
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from pydicom import dcmread, dcmwrite
from pydicom.datadict import tag_for_keyword
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    UID,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    JPEGLSLossless,
    RLELossless,
)

from ..options import Option, boolean, choice
from .pixels import Image

__all__ = [
    "IMPLEMENTATION_CLASS_UID",
    "IMPLEMENTATION_VERSION_NAME",
    "TRANSFER_SYNTAXES",
    "DEFAULT_LAYOUT",
    "OPTIONS",
    "ExportError",
    "Layout",
    "part10",
    "layout_path",
    "burned_in",
]

#: dicomsql's Implementation Class UID: ``2.25.`` and the UUID 5 of its name (PS3.5 B.2).
IMPLEMENTATION_CLASS_UID = "2.25.277925745034426314976310564941972592453"
IMPLEMENTATION_VERSION_NAME = "DICOMSQL_0_1"

#: The ``transfer_syntax`` option's values: ``keep`` writes the original's (Explicit VR Big
#: Endian, retired, becomes Explicit VR Little Endian); the others re-encode the pixel data.
TRANSFER_SYNTAXES: dict[str, UID | None] = {
    "keep": None,
    "explicit": ExplicitVRLittleEndian,
    "implicit": ImplicitVRLittleEndian,
    "deflated": DeflatedExplicitVRLittleEndian,
    "rle": RLELossless,
    "jpeg2000": JPEG2000Lossless,
    "jpegls": JPEGLSLossless,
}

DEFAULT_LAYOUT = "{PatientID}/{StudyInstanceUID}/{SeriesInstanceUID}/{SOPInstanceUID}.dcm"

#: SOP classes whose images often carry text burned into the pixels: secondary captures
#: (screenshots, scanned documents) and ultrasound (the device prints the patient's name).
BURNED_IN_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.7",  # Secondary Capture Image
        "1.2.840.10008.5.1.4.1.1.7.1",  # Multi-frame Single Bit SC
        "1.2.840.10008.5.1.4.1.1.7.2",  # Multi-frame Grayscale Byte SC
        "1.2.840.10008.5.1.4.1.1.7.3",  # Multi-frame Grayscale Word SC
        "1.2.840.10008.5.1.4.1.1.7.4",  # Multi-frame True Color SC
        "1.2.840.10008.5.1.4.1.1.6.1",  # Ultrasound Image
        "1.2.840.10008.5.1.4.1.1.6.2",  # Enhanced US Volume
        "1.2.840.10008.5.1.4.1.1.3.1",  # Ultrasound Multi-frame Image
        "1.2.840.10008.5.1.4.1.1.77.1.1",  # VL Endoscopic Image
        "1.2.840.10008.5.1.4.1.1.77.1.4",  # VL Photographic Image
    }
)
_BURNED_IN_MODALITIES = frozenset({"US", "SC", "OT", "ES", "XC"})


class ExportError(ValueError):
    """A row that cannot be written as a DICOM file; the message says why."""


@dataclass(frozen=True)
class Layout:
    """Where a file goes under the export folder: a relative path whose ``{Keyword}`` fields
    are the dataset's values (characters other than letters, digits, ``.``, ``-`` and ``_``
    become ``_``; an absent or empty value is ``unknown``)."""

    template: str

    def __post_init__(self) -> None:
        try:
            parsed = list(string.Formatter().parse(self.template))
        except ValueError:
            parsed = None
        fields = [name for _, name, _, _ in parsed or () if name is not None]
        parts = self.template.replace("\\", "/").split("/")
        if (
            not parsed
            or not fields
            or any(spec or conversion for _, _, spec, conversion in parsed)
            or self.template.startswith("/")
            or ".." in parts
            or "" in parts
        ):
            raise ValueError(
                "a relative path of plain {Keyword} fields (no format specs), e.g. "
                + DEFAULT_LAYOUT
            )
        unknown = [name for name in fields if not name or tag_for_keyword(name) is None]
        if unknown:
            raise ValueError(f"a path of DICOM keywords ({', '.join(unknown)} is none)")

    def __str__(self) -> str:
        return self.template

    def path(self, dataset: Dataset) -> str:
        """The relative path of ``dataset``'s file."""
        values = {}
        for _, name, _, _ in string.Formatter().parse(self.template):
            if name:
                value = dataset.get(name)
                text = "" if value is None else str(value)
                values[name] = re.sub(r"[^A-Za-z0-9._-]", "_", text).strip(".") or "unknown"
        return self.template.format(**values)


def _layout(text: str) -> Layout:
    return Layout(text.strip())


#: The options map of ``dicom_export`` (the options of ``dicom_deidentify`` apply too when
#: ``deidentify`` is ``basic``).
OPTIONS = (
    Option(
        "layout",
        Layout(DEFAULT_LAYOUT),
        "Where each file goes under out_dir: a relative path of {Keyword} fields (values made "
        "safe for file names; absent ones are 'unknown').",
        _layout,
    ),
    Option(
        "transfer_syntax",
        "keep",
        "keep (the original's), explicit, implicit, deflated (little endian), rle, jpeg2000 "
        "or jpegls (both lossless).",
        choice(*TRANSFER_SYNTAXES),
    ),
    Option("overwrite", False, "Replace files that exist (else the row is an error).", boolean),
    Option(
        "deidentify",
        "none",
        "basic: write the header de-identified as dicom_deidentify does, with its options.",
        choice("none", "basic"),
    ),
    Option(
        "allow_burned_in",
        False,
        "With deidentify: write images that may carry burned-in text (dicom_burned_in) too.",
        boolean,
    ),
)


def burned_in(model: Mapping[str, Any]) -> bool:
    """Whether an image may show identifying text in its pixels: its BurnedInAnnotation is
    YES, or it says nothing and is of a SOP class or modality that often does (secondary
    captures, ultrasound, endoscopy and photographs). Only images: a header without pixel
    attributes is False.

    >>> burned_in({"00280301": {"vr": "CS", "Value": ["YES"]}, "00280010": {"vr": "US", "Value": [8]}})
    True
    >>> burned_in({"00080060": {"vr": "CS", "Value": ["US"]}, "00280010": {"vr": "US", "Value": [8]}})
    True
    >>> burned_in({"00080060": {"vr": "CS", "Value": ["CT"]}, "00280010": {"vr": "US", "Value": [8]}})
    False
    """
    if "00280010" not in model:  # Rows: no image
        return False
    said = _first(model, "00280301")
    if said is not None:
        return str(said).strip().upper() == "YES"
    return (
        _first(model, "00080016") in BURNED_IN_SOP_CLASSES
        or _first(model, "00080060") in _BURNED_IN_MODALITIES
    )


def _first(model: Mapping[str, Any], tag: str) -> Any:
    values = (model.get(tag) or {}).get("Value") or [None]
    return values[0]


def part10(
    model: Mapping[str, Any],
    original: bytes | None = None,
    image: Image | None = None,
    transfer_syntax: str = "keep",
) -> tuple[Dataset, bytes]:
    """The Part 10 file of ``model`` (DICOM JSON) and its dataset. The pixel data is
    ``image``'s when given (a derived image: a new SOPInstanceUID, DERIVED in ImageType, the
    Image Pixel module and the rescale to match), else the ``original`` file's (bytes), which
    also gives the values ``model`` holds by BulkDataURI; a header without either is written
    without pixel data. Raises :class:`ExportError` saying why a file cannot be written."""
    source = _read(original) if original is not None else None
    dataset = _dataset(model, source)
    source_syntax = _source_syntax(model, source)
    if image is not None:
        _set_image(dataset, image, source)
        source_syntax = ExplicitVRLittleEndian
    elif source is not None:
        for tag in (0x7FE00008, 0x7FE00009, 0x7FE00010):
            if tag in source:
                dataset[tag] = source[tag]
    target = TRANSFER_SYNTAXES[transfer_syntax] or source_syntax
    if target == ExplicitVRBigEndian:  # retired (PS3.5 A.3): written little endian
        target = ExplicitVRLittleEndian
    if source_syntax == ExplicitVRBigEndian:
        _swap_binary_values(dataset)
    dataset.file_meta = _file_meta(dataset, model, source_syntax)
    try:
        _transcode(dataset, source_syntax, target)
    except ExportError:
        raise
    except Exception as exc:  # noqa: BLE001 - the codecs raise many types
        raise ExportError(f"cannot encode as {target.name}: {_reason(exc)}") from None
    dataset.file_meta.TransferSyntaxUID = target
    out = io.BytesIO()
    try:
        dcmwrite(out, dataset, enforce_file_format=True)
    except Exception as exc:  # noqa: BLE001 - a value pydicom cannot encode
        raise ExportError(f"cannot write the dataset: {_reason(exc)}") from None
    return dataset, out.getvalue()


def _reason(exc: Exception) -> str:
    text = " ".join(str(exc).split())
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def _read(original: bytes) -> Dataset:
    try:
        return dcmread(io.BytesIO(original), force=True)
    except Exception as exc:  # noqa: BLE001 - a broken file
        raise ExportError(f"the original file cannot be read: {_reason(exc)}") from None


def _source_syntax(model: Mapping[str, Any], source: Dataset | None) -> UID:
    if source is not None:
        meta = getattr(source, "file_meta", None)
        syntax = meta.get("TransferSyntaxUID") if meta is not None else None
        if syntax is None:  # a file without file meta: as pydicom read it
            implicit, little = getattr(source, "original_encoding", (True, True))
            syntax = (
                ImplicitVRLittleEndian
                if implicit
                else ExplicitVRLittleEndian
                if little is not False
                else ExplicitVRBigEndian
            )
        return UID(syntax)
    return UID(_first(model, "00020010") or ExplicitVRLittleEndian)


def _dataset(model: Mapping[str, Any], source: Dataset | None) -> Dataset:
    """The dataset of ``model`` without its file meta (group 0002); values held by
    ``BulkDataURI`` are ``source``'s at the same place (tag and sequence items)."""
    header = {key: value for key, value in model.items() if not key.startswith("0002")}
    try:
        with warnings.catch_warnings():  # BulkDataURI values come empty, then from source
            warnings.filterwarnings("ignore", message=".*bulk data", category=UserWarning)
            dataset = Dataset.from_json(header)  # (a handler costs inspect.signature a value)
    except Exception as exc:  # noqa: BLE001 - pydicom's errors for a bad model
        raise ExportError(f"meta is not a valid DICOM JSON dataset: {_reason(exc)}") from None
    _fill_bulk(dataset, header, source)
    return dataset


def _fill_bulk(dataset: Dataset, model: Mapping[str, Any], source: Dataset | None) -> None:
    for key, element in model.items():
        if not isinstance(element, Mapping):
            continue
        tag = int(key, 16)
        if "BulkDataURI" in element:
            if source is None or tag not in source or not isinstance(source[tag].value, bytes):
                raise ExportError(
                    f"({key[:4]},{key[4:]}) is in meta by reference only (BulkDataURI): "
                    "give the row's path or content to read it from"
                )
            dataset[tag].value = source[tag].value
        elif element.get("vr") == "SQ" and element.get("Value"):
            found = source[tag].value if source is not None and tag in source else []
            for index, item in enumerate(element["Value"]):
                if isinstance(item, Mapping):
                    origin = found[index] if index < len(found) else None
                    _fill_bulk(dataset[tag].value[index], item, origin)


def _file_meta(dataset: Dataset, model: Mapping[str, Any], syntax: UID) -> FileMetaDataset:
    """dicomsql's file meta for ``dataset``: its SOP Class and Instance UIDs (those of
    ``model``'s file meta for a dataset without them)."""
    sop_class = dataset.get("SOPClassUID") or _first(model, "00020002")
    sop_instance = dataset.get("SOPInstanceUID") or _first(model, "00020003")
    if not sop_class or not sop_instance:
        raise ExportError("meta has no SOPClassUID or SOPInstanceUID")
    meta = FileMetaDataset()
    meta.FileMetaInformationVersion = b"\x00\x01"
    meta.MediaStorageSOPClassUID = sop_class
    meta.MediaStorageSOPInstanceUID = sop_instance
    meta.TransferSyntaxUID = syntax
    meta.ImplementationClassUID = IMPLEMENTATION_CLASS_UID
    meta.ImplementationVersionName = IMPLEMENTATION_VERSION_NAME
    return meta


def _transcode(dataset: Dataset, source: UID, target: UID) -> None:
    """Re-encode ``dataset``'s pixel data from ``source``'s transfer syntax to ``target``'s:
    decoded (as pydicom does: YCbCr becomes RGB), then encoded losslessly. The SOPInstanceUID
    stays: the image is the same."""
    if "PixelData" not in dataset or source == target:
        return
    if source.is_compressed:
        dataset.decompress(generate_instance_uid=False)
    elif source == ExplicitVRBigEndian:
        # OW is swapped by 16-bit words, whatever the pixels' size (PS3.5 7.3)
        bits, vr = int(dataset.BitsAllocated), dataset["PixelData"].VR
        width = bits // 8 if bits >= 16 else 2 if vr == "OW" else 1
        dataset.PixelData = _little_endian(dataset.PixelData, width)
    dataset.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
    if target.is_compressed:
        _interleave(dataset)
        dataset.compress(target, generate_instance_uid=False)


#: Bytes per word of the binary VRs a big endian file stores in its byte order.
_WORD_SIZES = {"OW": 2, "OL": 4, "OF": 4, "OD": 8, "OV": 8}


def _little_endian(data: bytes, width: int) -> bytes:
    if width < 2 or len(data) % width:
        return data
    return np.frombuffer(data, dtype=f">u{width}").astype(f"<u{width}").tobytes()


def _swap_binary_values(dataset: Dataset) -> None:
    """The binary values (but the pixel data) of a big endian file's dataset in little
    endian order, as the file written has them."""
    for element in dataset.iterall():
        width = _WORD_SIZES.get(element.VR)
        if width and element.tag != 0x7FE00010 and isinstance(element.value, bytes):
            element.value = _little_endian(element.value, width)


def _interleave(dataset: Dataset) -> None:
    """Native colour pixels by plane (PlanarConfiguration 1) reordered by pixel, which the
    encoders expect."""
    samples = int(dataset.get("SamplesPerPixel", 1))
    if samples == 1 or int(dataset.get("PlanarConfiguration", 0)) != 1:
        return
    size = int(dataset.BitsAllocated) // 8
    shape = (int(dataset.get("NumberOfFrames") or 1), samples, dataset.Rows, dataset.Columns)
    planes = np.frombuffer(dataset.PixelData, dtype=f"<u{size}")[: np.prod(shape)]
    dataset.PixelData = planes.reshape(shape).transpose(0, 2, 3, 1).tobytes()
    dataset.PlanarConfiguration = 0


#: Image Pixel and presentation attributes that describe pixel values a derived image no
#: longer has.
_STALE_PIXEL_KEYWORDS = (
    "NumberOfFrames",
    "FrameIncrementPointer",
    "PlanarConfiguration",
    "PixelPaddingValue",
    "PixelPaddingRangeLimit",
    "SmallestImagePixelValue",
    "LargestImagePixelValue",
    "RedPaletteColorLookupTableDescriptor",
    "GreenPaletteColorLookupTableDescriptor",
    "BluePaletteColorLookupTableDescriptor",
    "RedPaletteColorLookupTableData",
    "GreenPaletteColorLookupTableData",
    "BluePaletteColorLookupTableData",
    "ModalityLUTSequence",
    "VOILUTSequence",
    "WindowCenter",
    "WindowWidth",
    "WindowCenterWidthExplanation",
    "RescaleSlope",
    "RescaleIntercept",
    "RescaleType",
    "FloatPixelData",
    "DoubleFloatPixelData",
    "ICCProfile",
    "SharedFunctionalGroupsSequence",
    "PerFrameFunctionalGroupsSequence",
    "DimensionIndexSequence",
)


def _set_image(dataset: Dataset, image: Image, source: Dataset | None) -> None:
    """Put a derived image in ``dataset``: monochrome values as 16-bit integers (exact when
    they are integers in range, else with the RescaleSlope and RescaleIntercept that map them
    back), RGB as 8-bit. A new SOPInstanceUID from the original's and the pixels."""
    for keyword in _STALE_PIXEL_KEYWORDS:
        dataset.pop(keyword, None)
    data = np.asarray(image.data, dtype=np.float64)
    if not np.isfinite(data).all():
        raise ExportError("the image has NaN or infinite values")
    if image.samples == 3:
        stored = np.clip(np.rint(data), 0, 255).astype(np.uint8)
        dataset.set_pixel_data(stored, "RGB", 8, generate_instance_uid=False)
    elif image.samples == 1:
        stored, slope, intercept = _as_int16(data)
        photometric = image.photometric if image.photometric == "MONOCHROME1" else "MONOCHROME2"
        dataset.set_pixel_data(stored, photometric, 16, generate_instance_uid=False)
        dataset.RescaleIntercept = _ds(intercept)
        dataset.RescaleSlope = _ds(slope)
    else:
        raise ExportError(f"an image of 1 or 3 samples per pixel, not {image.samples}")
    if image.window:
        dataset.WindowCenter, dataset.WindowWidth = (_ds(value) for value in image.window)
    if image.pixel_spacing:
        dataset.PixelSpacing = [_ds(value) for value in image.pixel_spacing]
    original = str(dataset.get("SOPInstanceUID", ""))
    dataset.SOPInstanceUID = _derived_uid(original, image, data)
    image_type = dataset.get("ImageType") or []
    image_type = [image_type] if isinstance(image_type, str) else list(image_type)
    dataset.ImageType = ["DERIVED", "SECONDARY", *image_type[2:]]
    dataset.DerivationDescription = "derived image written by dicomsql"
    if source is not None and "SOPClassUID" in source:
        item = Dataset()
        item.ReferencedSOPClassUID = source.SOPClassUID
        item.ReferencedSOPInstanceUID = original
        dataset.SourceImageSequence = [item]


def _derived_uid(original: str, image: Image, data: np.ndarray) -> str:
    """The UID of a derived image: a version 8 UUID (as ``2.25.``) of the original's UID and
    everything the image is (shape, kind, window, spacing, values), so the same image derived
    again is the same instance."""
    described = repr(
        (original, data.shape, image.samples, image.photometric, image.window, image.pixel_spacing)
    )
    digest = bytearray(hashlib.sha256(described.encode() + data.tobytes()).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return f"2.25.{int.from_bytes(digest, 'big')}"


def _as_int16(data: np.ndarray) -> tuple[np.ndarray, float, float]:
    """``data`` as int16 and the (slope, intercept) mapping it back: exact for integers whose
    range fits 65,536 values (shifted by the intercept when outside int16's), else the range
    spread over the 65,536 stored values."""
    low, high = float(data.min()), float(data.max())
    if np.array_equal(data, np.rint(data)) and high - low <= 65535:
        shift = 0.0 if -32768 <= low and high <= 32767 else low + 32768
        return (data - shift).astype(np.int16), 1.0, shift
    slope = (high - low) / 65535 or 1.0
    intercept = low + 32768 * slope
    stored = np.clip(np.rint((data - intercept) / slope), -32768, 32767).astype(np.int16)
    return stored, slope, intercept


def _ds(value: float) -> str:
    """A DS value (at most 16 characters) for ``value``."""
    for digits in range(16, 0, -1):
        text = f"{value:.{digits}g}"
        if len(text) <= 16:
            return text
    raise AssertionError(value)


def layout_path(dataset: Dataset, layout: Layout | str = DEFAULT_LAYOUT) -> str:
    """The relative path of ``dataset``'s file under ``layout``.

    >>> from pydicom.dataset import Dataset
    >>> ds = Dataset()
    >>> ds.PatientID, ds.SOPInstanceUID = "PAT/../01", "1.2.3"
    >>> layout_path(ds, "{PatientID}/{StudyInstanceUID}/{SOPInstanceUID}.dcm")
    'PAT_.._01/unknown/1.2.3.dcm'
    """
    return (layout if isinstance(layout, Layout) else Layout(layout)).path(dataset)
