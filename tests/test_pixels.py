"""Pixel decoding, windowing, PNG rendering and volumes against pydicom, on every file the
pydicom wheel ships with pixel data and on the demo cohort (pure: no Spark)."""

from __future__ import annotations

import io
import warnings

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.pixels import apply_color_lut, apply_modality_lut, apply_windowing

from dicomsql.dicom import pixels
from dicomsql.dicom.volume import Slice, stack

from .reference import PYDICOM_TEST_FILES, by_transfer_syntax


def _reference(path, frame: int) -> np.ndarray:
    """What pydicom gives: pixel_array, then the palette or the modality LUT."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        ds = pydicom.dcmread(path)
        values = pydicom.pixels.pixel_array(ds, index=frame)
    if ds.PhotometricInterpretation == "PALETTE COLOR":
        return apply_color_lut(values, ds).astype(np.float32)
    if int(ds.get("SamplesPerPixel") or 1) == 1:
        return apply_modality_lut(values, ds).astype(np.float32)
    return values.astype(np.float32)


def _decodable(path) -> bool:
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ds = pydicom.dcmread(path)
            return "PixelData" in ds and ds.pixel_array is not None
    except Exception:  # noqa: BLE001 - pydicom's own failure: ours must fail too
        return False


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(path, id=f"{syntax}/{path.name}")
        for syntax, paths in sorted(by_transfer_syntax().items())
        for path in paths
    ],
)
def test_every_frame_equals_pydicom(path):
    if not _decodable(path):
        with pytest.raises((pixels.DecodeError, IndexError, ValueError)):
            pixels.decode(str(path))
        return
    first = pixels.decode(str(path))
    for frame in sorted({0, first.frames // 2, first.frames - 1}):
        image = pixels.decode(str(path), frame)
        np.testing.assert_array_equal(image.data, _reference(path, frame), err_msg=f"frame {frame}")
        assert (image.rows, image.columns) == image.data.shape[:2]
    with pytest.raises(IndexError, match="out of range"):
        pixels.decode(str(path), first.frames)


def test_bytes_and_open_files_decode_alike():
    path = PYDICOM_TEST_FILES / "MR_small_RLE.dcm"
    from_path = pixels.decode(str(path)).data
    np.testing.assert_array_equal(pixels.decode(path.read_bytes()).data, from_path)
    with open(path, "rb") as fp:
        np.testing.assert_array_equal(pixels.decode(fp).data, from_path)


def test_errors_say_why():
    with pytest.raises(pixels.DecodeError, match="not a DICOM file"):
        pixels.decode(b"hello" * 40)
    ds = pydicom.dcmread(PYDICOM_TEST_FILES / "CT_small.dcm")
    ds.file_meta.TransferSyntaxUID = "1.2.840.10008.1.2.4.100"  # MPEG-2: no decoder anywhere
    ds.PixelData = pydicom.encaps.encapsulate([b"\x00" * 16])
    buffer = io.BytesIO()
    ds.save_as(buffer)
    with pytest.raises(pixels.DecodeError, match=r"MPEG2 .*\(1.2.840.10008.1.2.4.100\)"):
        pixels.decode(buffer.getvalue())


def test_a_missing_decoder_plugin_is_told_in_pydicoms_words(monkeypatch):
    lacking = (
        "Unable to decompress 'JPEG Baseline (Process 1)' pixel data because all plugins are missing dependencies:"
        "\n\tgdcm - requires gdcm>=3.0.10\n\tpylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1"
    )

    def no_plugin(*_args, **_kwargs):
        raise RuntimeError(lacking)  # what pydicom raises when no JPEG plugin is installed

    monkeypatch.setattr(pixels, "pixel_array", no_plugin)
    with pytest.raises(pixels.DecodeError) as raised:
        pixels.decode(str(PYDICOM_TEST_FILES / "SC_rgb_jpeg_dcmtk.dcm"))
    assert str(raised.value) == (
        "JPEG Baseline (Process 1) (1.2.840.10008.1.2.4.50): RuntimeError: Unable to decompress 'JPEG Baseline (Process 1)' "
        "pixel data because all plugins are missing dependencies: gdcm - requires gdcm>=3.0.10; "
        "pylibjpeg - requires pylibjpeg>=2.0 and pylibjpeg-libjpeg>=2.1"
    )


def test_window_is_pydicoms_linear_voi_scaled_to_unit():
    ds = pydicom.dcmread(PYDICOM_TEST_FILES / "CT_small.dcm")
    hu = apply_modality_lut(ds.pixel_array, ds)
    for center, width in ((40.0, 400.0), (-600.0, 1500.0), (0.0, 1.0), (100.0, 2.0)):
        ds.WindowCenter, ds.WindowWidth = center, width
        # pydicom scales the window to the modality range of the stored values
        low = -(2 ** (ds.BitsStored - 1)) * ds.RescaleSlope + ds.RescaleIntercept
        high = (2 ** (ds.BitsStored - 1) - 1) * ds.RescaleSlope + ds.RescaleIntercept
        np.testing.assert_allclose(
            pixels.window(hu, center, width) * (high - low) + low,
            apply_windowing(hu, ds),
            atol=1e-2,
        )
    with pytest.raises(ValueError, match="window width must be >= 1"):
        pixels.window(hu, 40, 0)


def test_png_thumbnails():
    image = pixels.decode(
        str(PYDICOM_TEST_FILES / "CT_small.dcm")
    )  # 128 x 128, no window in the file
    native = PILImage.open(io.BytesIO(pixels.to_png(image, 128, "abdomen")))
    assert native.size == (128, 128) and native.mode == "L"
    expected = np.round(pixels.window(image.data, 40, 400) * 255).astype(np.uint8)
    np.testing.assert_array_equal(np.asarray(native), expected)
    assert PILImage.open(io.BytesIO(pixels.to_png(image, 64))).size == (64, 64)
    wide = pixels.decode(str(PYDICOM_TEST_FILES / "examples_overlay.dcm"))  # 300 x 484
    assert PILImage.open(io.BytesIO(pixels.to_png(wide, 100))).size == (100, 62)
    colour = pixels.decode(str(PYDICOM_TEST_FILES / "examples_palette.dcm"))
    assert PILImage.open(io.BytesIO(pixels.to_png(colour, 50))).mode == "RGB"
    monochrome1 = pixels.Image(
        2, 2, 1, 1, "MONOCHROME1", None, (1.5, 4.0), np.array([[0, 1], [2, 3]], dtype=np.float32)
    )
    shown = np.asarray(PILImage.open(io.BytesIO(pixels.to_png(monochrome1, 2))))
    assert shown[0, 0] > shown[1, 1]  # high values dark
    with pytest.raises(KeyError, match="unknown window preset 'lungs'"):
        pixels.to_png(image, 64, "lungs")


def _series(demo):
    files = sorted((demo / "images" / "DEMO-0002" / "CT").glob("*.dcm"))
    return [pydicom.dcmread(p) for p in files]


def test_a_series_becomes_a_volume_sorted_along_its_normal(demo):
    datasets = _series(demo)
    slices = [
        Slice(
            apply_modality_lut(ds.pixel_array, ds),
            ds.ImagePositionPatient,
            ds.ImageOrientationPatient,
            ds.PixelSpacing,
        )
        for ds in datasets
    ]
    volume = stack(slices[::-1])  # order given must not matter
    assert volume["error"] is None and volume["shape"] == [len(slices), 64, 64]
    z = sorted(float(ds.ImagePositionPatient[2]) for ds in datasets)
    assert volume["origin"][2] == z[0]
    assert volume["spacing"] == pytest.approx(
        [float(datasets[0].SliceThickness), *map(float, datasets[0].PixelSpacing)]
    )
    data = np.asarray(volume["data"]).reshape(volume["shape"])
    first = min(slices, key=lambda s: s.position[2])
    np.testing.assert_array_equal(data[0], first.pixels.astype(np.float32))

    tilted = slices[:2] + [
        Slice(slices[2].pixels, slices[2].position, [1, 0, 0, 0, 0.8, 0.6], slices[2].pixel_spacing)
    ]
    assert stack(tilted)["error"] == "mixed orientations: the slices are not parallel"
    small = slices[:2] + [
        Slice(
            slices[2].pixels[:32],
            slices[2].position,
            slices[2].orientation,
            slices[2].pixel_spacing,
        )
    ]
    assert stack(small)["error"].startswith("mixed image sizes")
    assert stack(slices + slices[:1])["error"] == "two slices at the same position"
    assert stack(slices[:2] + slices[3:])["error"].startswith("uneven slice spacing")
