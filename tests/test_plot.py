"""The notebook plots draw what the queries return (matplotlib's Agg backend, no screen)."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")

import numpy as np
import pytest

from dicomsql import plot
from dicomsql.dicom import pixels


@pytest.fixture(scope="module")
def ct_rows(spark):
    return spark.sql("""SELECT PatientID, InstanceNumber, path, dicom_image(path) AS image, dicom_png(path, 32) AS png
                        FROM demo_images WHERE Modality = 'CT' AND _corrupt_record IS NULL ORDER BY path LIMIT 6""")


def test_thumbnail_grid_from_structs_pngs_and_paths(ct_rows):
    figure = plot.images(ct_rows, image="image", caption=["PatientID", "InstanceNumber"], columns=4)
    shown = [axis for axis in figure.axes if axis.images]
    assert len(figure.axes) == 8 and len(shown) == 6
    first = ct_rows.first()
    np.testing.assert_array_equal(
        shown[0].images[0].get_array(), pixels.to_8bit(pixels.decode(first.path))
    )
    assert shown[0].get_title() == f"{first.PatientID}\n{first.InstanceNumber}"
    assert len([a for a in plot.images(ct_rows.toPandas(), image="png").axes if a.images]) == 6
    assert (
        len(
            [
                a
                for a in plot.images(ct_rows.collect()[:2], image="path", window="lung").axes
                if a.images
            ]
        )
        == 2
    )


def test_eigenimages(spark):
    model = (
        spark.sql("""SELECT pca_fit(image_resize(path, 8, 8).data, 3) AS m FROM demo_images
                         WHERE Modality = 'CT' AND _corrupt_record IS NULL""")
        .first()
        .m
    )
    figure = plot.eigenimages(model, (8, 8))
    panels = [axis for axis in figure.axes if axis.images]
    assert [axis.get_title().split(" (")[0] for axis in panels] == [
        "mean",
        "component 1",
        "component 2",
        "component 3",
    ]
    np.testing.assert_allclose(
        panels[1].images[0].get_array(), np.reshape(model.components[0], (8, 8))
    )


def test_kaplan_meier_curves(spark):
    rows = spark.sql(
        "SELECT treated, km_fit(months, died) AS km FROM demo_patients GROUP BY treated ORDER BY treated"
    )
    figure = plot.km(rows, label="treated")
    axis = figure.axes[0]
    assert len(axis.lines) == 2 and axis.get_legend() is not None
    single = plot.km(rows.first().km)
    assert len(single.axes[0].lines) == 1
