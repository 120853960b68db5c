"""Image functions from SQL in the suite's session, against pydicom and numpy."""

from __future__ import annotations

import base64
import io

import numpy as np
import pydicom
import pytest
from PIL import Image as PILImage
from pydicom.pixels import apply_modality_lut

from dicomsql.dicom import pixels
from dicomsql.stats import images

from .conftest import PYDICOM_TEST_FILES

GOOD_CT = "FROM demo_images WHERE Modality = 'CT' AND _corrupt_record IS NULL"


def _hu(path) -> np.ndarray:
    ds = pydicom.dcmread(path)
    return apply_modality_lut(ds.pixel_array, ds).astype(np.float32)


def test_dicom_image_struct(spark):
    rows = spark.sql(
        f"SELECT path, dicom_image(path) AS image, PixelSpacing, WindowCenter, WindowWidth {GOOD_CT} LIMIT 4"
    ).collect()
    for row in rows:
        image = row.image
        assert (image.rows, image.columns, image.samples, image.frames) == (64, 64, 1, 1)
        assert image.photometric == "MONOCHROME2" and image.error is None
        assert image.pixel_spacing == row.PixelSpacing
        assert image.window == [row.WindowCenter[0], row.WindowWidth[0]]
        np.testing.assert_array_equal(
            np.array(image.data, dtype=np.float32).reshape(64, 64), _hu(row.path)
        )


def test_invert_mirrors_the_values_within_their_range(spark):
    rows = spark.sql(
        f"""SELECT path, dicom_image(path).data AS plain,
                   dicom_image(path, 0, map('invert', 'false')).data AS not_inverted,
                   dicom_image(path, 0, map('invert', 'true')).data AS inverted {GOOD_CT} LIMIT 2"""
    ).collect()
    assert len(rows) == 2
    for row in rows:
        hu = _hu(row.path).ravel()
        assert hu.min() < hu.max()
        np.testing.assert_array_equal(np.array(row.plain, dtype=np.float32), hu)
        np.testing.assert_array_equal(np.array(row.not_inverted, dtype=np.float32), hu)
        np.testing.assert_array_equal(
            np.array(row.inverted, dtype=np.float32), hu.min() + hu.max() - hu
        )


def test_frames_of_multiframe_and_colour_files(spark, shipped):
    path = str(PYDICOM_TEST_FILES / "SC_rgb_rle_2frame.dcm")
    row = spark.sql(
        "SELECT dicom_pixels(path, 1) AS second, dicom_image(path, 1) AS image FROM shipped WHERE path = :p",
        args={"p": path},
    ).first()
    expected = pydicom.dcmread(path).pixel_array[1].astype(np.float32)
    np.testing.assert_array_equal(
        np.array(row.second, dtype=np.float32).reshape(expected.shape), expected
    )
    assert (row.image.samples, row.image.frames) == (3, 2)
    dose = str(PYDICOM_TEST_FILES / "rtdose.dcm")
    frames = spark.sql(
        "SELECT f.frame, f.image.data AS data FROM (SELECT :p AS path) s, LATERAL dicom_frames(s.path) f "
        "ORDER BY f.frame",
        args={"p": dose},
    ).collect()
    ds = pydicom.dcmread(dose)
    assert [f.frame for f in frames] == list(range(ds.NumberOfFrames))
    for f in frames:
        np.testing.assert_array_equal(
            np.array(f.data, dtype=np.float32),
            apply_modality_lut(ds.pixel_array[f.frame], ds).astype(np.float32).ravel(),
        )
    out_of_range = spark.sql("SELECT dicom_image(:p, 9).error AS e", args={"p": path}).first().e
    assert "frame 9 out of range: the file has 2 frame(s)" in out_of_range


@pytest.mark.cluster
def test_windows_and_thumbnails(spark):
    row = spark.sql(f"""SELECT path, dicom_window(dicom_pixels(path), 'lung') AS lung, dicom_window(path) AS own,
                               dicom_window(path, 40, 400) AS soft, dicom_png(path, 32, 'bone') AS png,
                               dicom_png_uri(path) AS uri {GOOD_CT} LIMIT 1""").first()
    hu = _hu(row.path)
    np.testing.assert_allclose(row.lung, pixels.window(hu, -600, 1500).ravel(), atol=1e-6)
    np.testing.assert_allclose(
        row.own, pixels.window(hu, 40, 400).ravel(), atol=1e-6
    )  # the demo's first window
    np.testing.assert_allclose(row.soft, row.own, atol=1e-6)
    thumbnail = PILImage.open(io.BytesIO(row.png))
    assert thumbnail.format == "PNG" and thumbnail.size == (32, 32)
    assert row.uri.startswith("data:image/png;base64,")
    native = PILImage.open(io.BytesIO(base64.b64decode(row.uri.split(",", 1)[1])))
    assert native.size == (256, 256)  # the default size, scaled up
    with pytest.raises(Exception, match="dicom_png: argument window must be auto or one of lung"):
        spark.sql(f"SELECT dicom_png(path, 32, 'lungs') {GOOD_CT}").collect()
    with pytest.raises(
        Exception, match="dicom_window: argument window must be a window center or one of lung"
    ):
        spark.sql(f"SELECT dicom_window(path, 'lungs') {GOOD_CT}").collect()


def test_per_image_maths_against_numpy(spark):
    row = spark.sql(f"""SELECT path, image_covariance(path) AS cov, image_eigen(path) AS eig, image_pca(path, 3) AS pca,
                               image_stats(path, 16) AS stats {GOOD_CT} LIMIT 1""").first()
    hu = _hu(row.path).astype(np.float64)
    np.testing.assert_allclose(np.array(row.cov), np.cov(hu, rowvar=False), rtol=1e-9, atol=1e-9)
    expected = images.eigen(hu)
    np.testing.assert_allclose(row.eig.eigenvalues, expected["eigenvalues"], rtol=1e-9, atol=1e-9)
    np.testing.assert_allclose(
        np.array(row.eig.eigenvectors), expected["eigenvectors"], rtol=1e-7, atol=1e-9
    )
    reference = images.pca(hu, 3)
    np.testing.assert_allclose(
        row.pca.explained_variance_ratio, reference["explained_variance_ratio"], rtol=1e-9
    )
    np.testing.assert_allclose(np.array(row.pca.scores), reference["scores"], rtol=1e-7, atol=1e-6)
    assert row.stats.n == 64 * 64 and row.stats.min == hu.min() and row.stats.max == hu.max()
    assert row.stats.mean == pytest.approx(hu.mean()) and sum(row.stats.histogram) == 64 * 64
    with pytest.raises(Exception, match="image_pca: argument k must be between 1 and 8192, got 0"):
        spark.sql(f"SELECT image_pca(path, 0) {GOOD_CT}").collect()


@pytest.mark.cluster
def test_resize_and_cohort_pca_against_numpy(spark):
    frame = spark.sql(
        f"SELECT path, image_resize(path, 12, 10) AS small, PixelSpacing {GOOD_CT} ORDER BY path"
    ).collect()
    vectors = np.array([r.small.data for r in frame], dtype=np.float64)
    first = frame[0]
    assert (first.small.rows, first.small.columns) == (12, 10)
    assert first.small.pixel_spacing == pytest.approx(
        [first.PixelSpacing[0] * 64 / 12, first.PixelSpacing[1] * 64 / 10]
    )
    np.testing.assert_allclose(
        vectors[0], images.resize(_hu(first.path), 12, 10).ravel(), rtol=1e-6
    )
    with pytest.raises(
        Exception, match="image_resize: argument rows must be between 1 and 8192, got 100000"
    ):
        spark.sql(
            f"SELECT image_resize(path, 100000, 100000) {GOOD_CT}"
        ).collect()  # 40 GB per image: refused

    # the cohort functions on the resized images, decoded once (the query above)
    spark.createDataFrame(
        [(row.path, row.small.data) for row in frame], "path STRING, v ARRAY<DOUBLE>"
    ).createOrReplaceTempView("small_ct")
    cov = spark.sql("SELECT cov_fit(v) AS c FROM small_ct").first().c
    assert cov.n == len(vectors)
    np.testing.assert_allclose(
        np.array(cov.covariance), np.cov(vectors, rowvar=False), rtol=1e-9, atol=1e-6
    )
    partial = (
        spark.sql(
            "SELECT cov_merge(n, mean, scatter) AS c FROM cov_partials(TABLE(SELECT v FROM small_ct))"
        )
        .first()
        .c
    )
    np.testing.assert_allclose(
        np.array(partial.covariance), np.array(cov.covariance), rtol=1e-9, atol=1e-6
    )

    model = spark.sql("SELECT pca_fit(v, 4) AS m FROM small_ct").first().m
    _, singular, components = np.linalg.svd(vectors - vectors.mean(0), full_matrices=False)
    assert model.method == "covariance" and model.n == len(vectors) and model.dimension == 120
    np.testing.assert_allclose(model.eigenvalues, singular[:4] ** 2 / (len(vectors) - 1), rtol=1e-7)
    np.testing.assert_allclose(
        np.array(model.components), images.orient(components[:4]), rtol=1e-6, atol=1e-8
    )
    from_cov = spark.sql("SELECT pca_from_cov(cov_fit(v), 4) AS m FROM small_ct").first().m
    np.testing.assert_allclose(
        np.array(from_cov.components), np.array(model.components), rtol=1e-9, atol=1e-12
    )

    projected = spark.sql("""SELECT i.path, pca_project(m.m, i.v) AS scores,
                                     pca_reconstruct(m.m, pca_project(m.m, i.v)) AS back
                              FROM small_ct i CROSS JOIN (SELECT pca_fit(v, 4) AS m FROM small_ct) m
                              ORDER BY i.path""").collect()
    components = np.array(model.components)
    np.testing.assert_allclose(
        np.array([p.scores for p in projected]),
        (vectors - vectors.mean(0)) @ components.T,
        rtol=1e-6,
        atol=1e-6,
    )
    np.testing.assert_allclose(
        np.array([p.back for p in projected]),
        vectors.mean(0) + ((vectors - vectors.mean(0)) @ components.T) @ components,
        rtol=1e-6,
        atol=1e-4,
    )
    with pytest.raises(Exception, match="pca_fit: argument vector must be arrays of one length"):
        spark.sql(
            "SELECT pca_fit(v, 2) FROM VALUES (array(1.0, 2.0)), (array(1.0, 2.0, 3.0)) AS t(v)"
        ).collect()


def test_series_volumes(spark, demo):
    rows = spark.sql("""SELECT PatientID, series_volume(dicom_image(path), ImagePositionPatient, ImageOrientationPatient) AS v
                        FROM demo_images WHERE Modality = 'CT' AND _corrupt_record IS NULL GROUP BY PatientID""").collect()
    for row in rows:
        thickness = spark.sql(
            f"SELECT min(SliceThickness) {GOOD_CT} AND PatientID = '{row.PatientID}'"
        ).first()[0]
        assert row.v.error is None and row.v.shape == [8, 64, 64]
        assert row.v.spacing[0] == pytest.approx(thickness)
        files = sorted(
            (demo / "images" / row.PatientID / "CT").glob("*.dcm"),
            key=lambda p: float(pydicom.dcmread(p).ImagePositionPatient[2]),
        )
        np.testing.assert_array_equal(
            np.array(row.v.data, dtype=np.float32).reshape(8, 64, 64)[0], _hu(files[0])
        )
    mixed = (
        spark.sql("""SELECT series_volume(dicom_image(path), ImagePositionPatient, ImageOrientationPatient).error AS e
                         FROM demo_images WHERE Modality = 'CT' AND _corrupt_record IS NULL""")
        .first()
        .e
    )
    assert mixed == "two slices at the same position"  # every patient's series at once
