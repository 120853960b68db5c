"""The demo cohort: real, consistent DICOM files and an outcome from a known Cox model."""

from __future__ import annotations

import json
from collections import defaultdict

import numpy as np
import pandas as pd
import pydicom
import pytest
from lifelines import CoxPHFitter

from dicomsql.demo import (
    CT_SLICES,
    MR_SLICES,
    NAMES,
    TRANSFER_SYNTAXES,
    TRUE_COEFFICIENTS,
    demo_is_complete,
    simulate_patients,
    write_demo,
)

from .conftest import DEMO_PATIENTS


def _datasets(demo):
    return {p: pydicom.dcmread(p) for p in sorted((demo / "images").glob("*/*/*.dcm"))}


def test_files_are_valid_dicom_in_every_transfer_syntax(demo):
    datasets = _datasets(demo)
    assert len(datasets) == DEMO_PATIENTS * (CT_SLICES + MR_SLICES)
    syntaxes = {ds.file_meta.TransferSyntaxUID for ds in datasets.values()}
    assert syntaxes == set(TRANSFER_SYNTAXES)
    assert any(ds.file_meta.TransferSyntaxUID.is_compressed for ds in datasets.values())
    for ds in datasets.values():
        assert ds.pixel_array.shape == (ds.Rows, ds.Columns) == (64, 64)


def test_patient_study_series_and_geometry_are_consistent(demo):
    clinical = pd.read_parquet(demo / "patients.parquet").set_index("PatientID")
    by_series = defaultdict(list)
    for path, ds in _datasets(demo).items():
        patient = clinical.loc[ds.PatientID]
        assert path.parts[-3] == ds.PatientID
        assert ds.PatientAge == f"{int(patient['age']):03d}Y"
        assert ds.PatientSex == patient["sex"]
        assert tuple(str(ds.PatientName).split("^")) in NAMES
        assert ds.SpecificCharacterSet == "ISO_IR 192"
        assert ds.InstitutionName.startswith(patient["site"])
        by_series[ds.SeriesInstanceUID].append(ds)
    assert len(by_series) == 2 * DEMO_PATIENTS
    for series in by_series.values():
        series.sort(key=lambda ds: ds.InstanceNumber)
        assert len({ds.StudyInstanceUID for ds in series}) == 1
        assert len({(ds.Manufacturer, ds.ManufacturerModelName) for ds in series}) == 1
        z = np.array([ds.ImagePositionPatient[2] for ds in series])
        assert np.allclose(np.diff(z), float(series[0].SliceThickness))
        assert all(list(ds.ImageOrientationPatient) == [1, 0, 0, 0, 1, 0] for ds in series)


def test_ct_is_in_hounsfield_units_with_the_tumour_where_the_geometry_says(demo):
    clinical = pd.read_parquet(demo / "patients.parquet").set_index("PatientID")
    for patient_id in clinical.index:
        slices = [
            pydicom.dcmread(p) for p in sorted((demo / "images" / patient_id / "CT").glob("*.dcm"))
        ]
        ds = min(
            slices, key=lambda d: abs(float(d.ImagePositionPatient[2]))
        )  # nearest the tumour centre
        hu = pydicom.pixels.apply_modality_lut(ds.pixel_array, ds)
        assert hu.min() < -900 and hu.max() > 500  # air and spine
        # patient coordinates (mm) of each pixel centre, from the geometry attributes
        row_mm, column_mm = (float(v) for v in ds.PixelSpacing)
        x0, y0, z = (float(v) for v in ds.ImagePositionPatient)
        y, x = np.mgrid[0 : ds.Rows, 0 : ds.Columns]
        x, y = x0 + x * column_mm, y0 + y * row_mm
        right_lung = ((x + 60) / 45) ** 2 + ((y + 5) / 70) ** 2 <= 0.8**2  # away from its edge
        tumour_area = ((hu > -400) & right_lung).sum() * row_mm * column_mm
        radius = clinical.loc[patient_id, "tumor_mm"] / 2
        expected_area = np.pi * max(radius**2 - z**2, 0)
        assert abs(np.sqrt(tumour_area / np.pi) - np.sqrt(expected_area / np.pi)) <= 1.5 * row_mm, (
            patient_id
        )


def test_clinical_table_and_description(demo):
    clinical = pd.read_parquet(demo / "patients.parquet")
    assert list(clinical.columns) == [
        "PatientID",
        "site",
        "sex",
        "age",
        "smoker",
        "tumor_mm",
        "treated",
        "months",
        "died",
    ]
    assert len(clinical) == DEMO_PATIENTS
    assert set(clinical["PatientID"]) == {p.name for p in (demo / "images").iterdir() if p.is_dir()}
    description = json.loads((demo / "cohort.json").read_text())
    assert description["outcome"]["true_coefficients"] == TRUE_COEFFICIENTS
    assert demo_is_complete(demo)


def test_outcome_follows_the_true_cox_model():
    clinical = simulate_patients(3000, np.random.default_rng(11))
    fitted = CoxPHFitter().fit(clinical[[*TRUE_COEFFICIENTS, "months", "died"]], "months", "died")
    summary = fitted.summary
    for name, beta in TRUE_COEFFICIENTS.items():
        assert summary.loc[name, "coef lower 95%"] <= beta <= summary.loc[name, "coef upper 95%"], (
            name
        )
    assert 0.3 < clinical["died"].mean() < 0.9


def test_same_seed_same_files(tmp_path):
    first = write_demo(tmp_path / "a", patients=1, seed=3, size=32)
    second = write_demo(tmp_path / "b", patients=1, seed=3, size=32)
    files = sorted(p.relative_to(first) for p in first.rglob("*.dcm"))
    assert files == sorted(p.relative_to(second) for p in second.rglob("*.dcm"))
    assert all((first / f).read_bytes() == (second / f).read_bytes() for f in files)


def test_refuses_to_overwrite(tmp_path):
    write_demo(tmp_path / "d", patients=1, size=32)
    with pytest.raises(FileExistsError, match="exists already"):
        write_demo(tmp_path / "d", patients=1, size=32)
