"""A synthetic but realistic demo cohort with signal to find.

``write_demo(out, patients, seed)`` writes, deterministically for a seed:

- ``images/<PatientID>/CT/*.dcm``: a chest CT series per patient (a body phantom in Hounsfield
  units with lungs, spine and a lung tumour whose diameter is the patient's ``tumor_mm``);
- ``images/<PatientID>/MR/*.dcm``: a brain MR series per patient;
- ``patients.parquet``: one row per patient, the clinical table: ``PatientID, site, sex, age,
  smoker, tumor_mm, treated, months, died``;
- ``devices.parquet``: the CT fleet of the four sites with service records: ``device_id`` (the
  DeviceSerialNumber in the headers), ``site``, make and model, ``age_years``,
  ``daily_scans``, and time to failure (``months``, ``failed``);
- ``reads.parquet``: quality ratings of the CT series: each series is read by three of ten
  radiologists, who rate it 1 to 5 (``SeriesInstanceUID, PatientID, reader, protocol,
  capture, quality``); ``capture`` names the settings (kV, kernel, slice thickness);
- ``cohort.json``: how it was made, including the true models of the outcomes.

All files of a patient share patient, study and device attributes; names are UTF-8
(``ISO_IR 192``) and include non-Latin scripts; slices carry consistent geometry
(ImagePositionPatient, ImageOrientationPatient, PixelSpacing, SliceThickness); each series
is written in one of several transfer syntaxes, compressed ones included.

The survival outcome follows a Cox model with a Weibull baseline hazard:
``h(t | x) = h0(t) exp(x . TRUE_COEFFICIENTS)``, censored administratively, so a Cox fit on
the clinical table recovers :data:`TRUE_COEFFICIENTS`; device failures follow one too
(:data:`DEVICE_TRUE_COEFFICIENTS`).

Each CT series is acquired with one of three capture protocols (:data:`PROTOCOLS`), which
sets the kV, tube current, exposure, kernel and slice thickness with some spread, so the
protocol can be told from the device metadata in the headers. Readers' ratings come from a
low-rank model: each reader weighs sharpness against noise differently.
"""

from __future__ import annotations

import datetime
import json
import shutil
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.uid import (
    PYDICOM_IMPLEMENTATION_UID,
    UID,
    CTImageStorage,
    DeflatedExplicitVRLittleEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000Lossless,
    MRImageStorage,
    RLELossless,
    generate_uid,
)

__all__ = [
    "TRUE_COEFFICIENTS",
    "DEVICE_TRUE_COEFFICIENTS",
    "PROTOCOLS",
    "DEMO_VERSION",
    "write_demo",
    "demo_is_complete",
    "demo_version",
]

#: Bumped when the demo gains files or columns: an older demo in a home is rewritten.
DEMO_VERSION = 2

#: log hazard ratio of each clinical covariate in the demo's outcome model.
TRUE_COEFFICIENTS = {"age": 0.03, "smoker": 0.5, "tumor_mm": 0.05, "treated": -0.7}
WEIBULL_SHAPE = 1.4
WEIBULL_SCALE_MONTHS = 40.0
FOLLOW_UP_MONTHS = (12.0, 72.0)

#: log hazard ratio of each device covariate in the devices' time-to-failure model.
DEVICE_TRUE_COEFFICIENTS = {"age_years": 0.15, "daily_scans": 0.03}
DEVICE_WEIBULL_SHAPE = 1.3
DEVICE_WEIBULL_SCALE_MONTHS = 60.0
DEVICE_FOLLOW_UP_MONTHS = (24.0, 60.0)
DEVICES = 160
READERS = 10
READS_PER_SERIES = 3

TRANSFER_SYNTAXES = (
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    DeflatedExplicitVRLittleEndian,
    RLELossless,
    JPEG2000Lossless,
)
_COMPRESSED = {RLELossless, JPEG2000Lossless}


@dataclass(frozen=True)
class Protocol:
    """A CT capture protocol: the settings a technologist picks within."""

    name: str
    kvp: tuple[float, ...]
    tube_ma: tuple[int, int]
    exposure_ms: int
    kernels: tuple[str, ...]
    slice_mm: tuple[float, ...]


PROTOCOLS = (
    Protocol("LOW DOSE CHEST", (100.0, 120.0), (30, 100), 500, ("STANDARD", "SOFT"), (2.5, 5.0)),
    Protocol("STANDARD CHEST", (120.0,), (150, 300), 750, ("STANDARD",), (1.25, 2.5)),
    Protocol("HIGH RES CHEST", (120.0, 140.0), (200, 400), 1000, ("LUNG", "BONE"), (0.625, 1.0)),
)


@dataclass(frozen=True)
class Site:
    """A hospital: its CT and MR scanners and how often it uses each CT protocol."""

    name: str
    ct: tuple[str, str]
    mr: tuple[str, str]
    protocol_shares: tuple[float, float, float]
    mr_tesla: float


SITES = (
    Site(
        "North", ("SIEMENS", "SOMATOM Force"), ("SIEMENS", "MAGNETOM Skyra"), (0.2, 0.4, 0.4), 3.0
    ),
    Site(
        "South",
        ("GE MEDICAL SYSTEMS", "Revolution CT"),
        ("GE MEDICAL SYSTEMS", "SIGNA Premier"),
        (0.5, 0.3, 0.2),
        3.0,
    ),
    Site("East", ("Philips", "IQon Spectral CT"), ("Philips", "Ingenia"), (0.3, 0.4, 0.3), 1.5),
    Site(
        "West",
        ("Canon Medical Systems", "Aquilion ONE"),
        ("Canon Medical Systems", "Vantage Orian"),
        (0.4, 0.5, 0.1),
        1.5,
    ),
)

NAMES = (
    ("Müller", "Jürgen"),
    ("García", "José"),
    ("Łukasiewicz", "Zofia"),
    ("Ødegaard", "Sigrid"),
    ("Nguyễn", "Thị Mai"),
    ("Smith", "John"),
    ("山田", "太郎"),
    ("Öztürk", "Ayşe"),
    ("Ó Briain", "Siobhán"),
    ("Иванова", "Анна"),
    ("Dubois", "Chloé"),
    ("Kim", "Min-jun"),
)

CT_SLICES = 8
MR_SLICES = 4
FIELD_OF_VIEW_MM = 360.0


def _uid(*parts: object) -> UID:
    return generate_uid(entropy_srcs=[str(p) for p in parts])


def simulate_patients(patients: int, rng: np.random.Generator) -> pd.DataFrame:
    """The clinical table, outcome drawn from the true Cox model (Weibull baseline)."""
    age = np.clip(rng.normal(62, 10, patients), 30, 90).round()
    smoker = (rng.random(patients) < 0.35).astype(np.int32)
    tumor_mm = np.clip(rng.lognormal(np.log(14), 0.45, patients), 4, 45).round(1)
    treated = (rng.random(patients) < 0.5).astype(np.int32)
    covariates = pd.DataFrame(
        {"age": age, "smoker": smoker, "tumor_mm": tumor_mm, "treated": treated}
    )
    risk = np.exp(sum(beta * covariates[name] for name, beta in TRUE_COEFFICIENTS.items()) - 2.5)
    # Weibull proportional hazards: S(t | x) = exp(-(t / scale)^shape * risk)
    event_time = WEIBULL_SCALE_MONTHS * (-np.log(rng.random(patients)) / risk) ** (
        1 / WEIBULL_SHAPE
    )
    censor_time = rng.uniform(*FOLLOW_UP_MONTHS, patients)
    return pd.DataFrame(
        {
            "PatientID": [f"DEMO-{i + 1:04d}" for i in range(patients)],
            "site": [SITES[i % len(SITES)].name for i in range(patients)],
            "sex": rng.choice(["F", "M"], patients),
            **covariates,
            "months": np.minimum(event_time, censor_time).round(1),
            "died": (event_time <= censor_time).astype(np.int32),
        }
    )


def simulate_devices(rng: np.random.Generator) -> pd.DataFrame:
    """The CT fleet's service records, time to failure drawn from the true Cox model
    (Weibull baseline), censored at the end of each device's follow-up."""
    sites = [SITES[i % len(SITES)] for i in range(DEVICES)]
    covariates = pd.DataFrame(
        {
            "age_years": rng.uniform(0, 12, DEVICES).round(1),
            "daily_scans": rng.integers(10, 70, DEVICES).astype(np.int32),
        }
    )
    risk = np.exp(
        sum(beta * covariates[name] for name, beta in DEVICE_TRUE_COEFFICIENTS.items()) - 1.5
    )
    failure = DEVICE_WEIBULL_SCALE_MONTHS * (-np.log(rng.random(DEVICES)) / risk) ** (
        1 / DEVICE_WEIBULL_SHAPE
    )
    censor = rng.uniform(*DEVICE_FOLLOW_UP_MONTHS, DEVICES)
    return pd.DataFrame(
        {
            "device_id": [
                f"CT-{site.name.upper()}-{i // len(SITES) + 1:02d}" for i, site in enumerate(sites)
            ],
            "site": [site.name for site in sites],
            "Manufacturer": [site.ct[0] for site in sites],
            "ManufacturerModelName": [site.ct[1] for site in sites],
            **covariates,
            "months": np.minimum(failure, censor).round(1),
            "failed": (failure <= censor).astype(np.int32),
        }
    )


def simulate_captures(
    clinical: pd.DataFrame, devices: pd.DataFrame, rng: np.random.Generator
) -> pd.DataFrame:
    """Per patient, the CT series' device and capture settings: a protocol drawn with the
    site's shares, then settings within the protocol's ranges."""
    rows = []
    for _, patient in clinical.iterrows():
        site = next(s for s in SITES if s.name == patient["site"])
        protocol = PROTOCOLS[rng.choice(len(PROTOCOLS), p=site.protocol_shares)]
        kvp, kernel = float(rng.choice(protocol.kvp)), str(rng.choice(protocol.kernels))
        slice_mm, tube_ma = (
            float(rng.choice(protocol.slice_mm)),
            int(rng.integers(*protocol.tube_ma)),
        )
        exposure = round(tube_ma * protocol.exposure_ms / 1000)
        rows.append(
            {
                "PatientID": patient["PatientID"],
                "ProtocolName": protocol.name,
                "DeviceSerialNumber": str(
                    rng.choice(devices.loc[devices.site == site.name, "device_id"])
                ),
                "KVP": kvp,
                "XRayTubeCurrent": tube_ma,
                "ExposureTime": protocol.exposure_ms,
                "Exposure": exposure,
                "CTDIvol": round(0.08 * exposure * (kvp / 120) ** 2.5, 2),
                "ConvolutionKernel": kernel,
                "SliceThickness": slice_mm,
                "capture": f"{kvp:.0f}kV {kernel} {slice_mm:g}mm",
            }
        )
    return pd.DataFrame(rows)


def simulate_reads(captures: pd.DataFrame, seed: int, rng: np.random.Generator) -> pd.DataFrame:
    """Quality ratings (1-5) of each CT series by three of the readers, from a low-rank
    model: a reader's liking of sharp images (thin slices, sharp kernels) and dislike of
    noise (low dose) weigh the series' sharpness and noise."""
    likes_sharp = rng.normal(0, 1, READERS)
    dislikes_noise = np.abs(rng.normal(0.8, 0.5, READERS))
    rows = []
    for capture in captures.itertuples():
        sharpness = (
            (capture.ConvolutionKernel in ("LUNG", "BONE"))
            + 0.5 * (capture.SliceThickness <= 1.0)
            - 0.5 * (capture.SliceThickness >= 5.0)
        )
        noise = 1.0 * (capture.XRayTubeCurrent < 100) + 0.5 * (capture.KVP <= 100)
        for reader in rng.choice(READERS, READS_PER_SERIES, replace=False):
            quality = (
                3
                + 0.8 * likes_sharp[reader] * sharpness
                - 0.8 * dislikes_noise[reader] * noise
                + rng.normal(0, 0.4)
            )
            rows.append(
                {
                    "SeriesInstanceUID": str(_series_uid(seed, capture.PatientID, "CT")),
                    "PatientID": capture.PatientID,
                    "reader": f"R{reader + 1:02d}",
                    "protocol": capture.ProtocolName,
                    "capture": capture.capture,
                    "quality": int(np.clip(np.round(quality), 1, 5)),
                }
            )
    return pd.DataFrame(rows)


def _series_uid(seed: int, patient_id: str, modality: str) -> UID:
    return _uid(seed, patient_id, modality, "series")


def _body_phantom(size: int, z_mm: float, tumor_mm: float, rng: np.random.Generator) -> np.ndarray:
    """A chest CT slice in HU: air, body, lungs, spine and a spherical tumour in the right
    lung centred at z = 0 (its cross-section shrinks away from it)."""
    # pixel centres in patient coordinates, as ImagePositionPatient and PixelSpacing say
    centres = np.arange(size) * (FIELD_OF_VIEW_MM / size) - FIELD_OF_VIEW_MM / 2
    y, x = np.meshgrid(centres, centres, indexing="ij")
    hu = np.full((size, size), -1000.0)
    hu[(x / 150) ** 2 + (y / 110) ** 2 <= 1] = 40.0
    for centre in (-60.0, 60.0):
        hu[((x - centre) / 45) ** 2 + ((y + 5) / 70) ** 2 <= 1] = -850.0
    hu[x**2 + (y - 80) ** 2 <= 12**2] = 700.0
    radius = tumor_mm / 2
    if abs(z_mm) < radius:
        section = np.sqrt(radius**2 - z_mm**2)
        hu[(x + 60) ** 2 + (y + 10) ** 2 <= section**2] = 30.0
    return hu + rng.normal(0, 8, hu.shape)


def _brain_phantom(size: int, slice_index: int, rng: np.random.Generator) -> np.ndarray:
    """An MR slice (arbitrary units): skull ring, white/grey matter, ventricles."""
    y, x = np.mgrid[-1 : 1 : size * 1j, -1 : 1 : size * 1j]
    r = np.sqrt((x / 0.8) ** 2 + (y / 0.95) ** 2)
    image = np.where(r < 1.0, 900.0, 0.0)
    image[r < 0.92] = 600.0
    image[r < 0.7] = 750.0
    image[(np.abs(x) < 0.12 + 0.02 * slice_index) & (np.abs(y) < 0.3)] = 200.0
    return np.clip(image + rng.normal(0, 15, image.shape), 0, 4095)


def _base_dataset(patient: pd.Series, study_date: datetime.date, seed: int) -> Dataset:
    family, given = NAMES[int(patient.name) % len(NAMES)]
    birth = study_date - datetime.timedelta(
        days=int(patient["age"] * 365.25) + int(patient.name) % 300
    )
    ds = Dataset()
    ds.SpecificCharacterSet = "ISO_IR 192"
    ds.PatientName = f"{family}^{given}"
    ds.PatientID = patient["PatientID"]
    ds.PatientBirthDate = birth.strftime("%Y%m%d")
    ds.PatientSex = patient["sex"]
    ds.PatientAge = f"{int(patient['age']):03d}Y"
    ds.StudyInstanceUID = _uid(seed, patient["PatientID"], "study")
    ds.StudyDate = ds.SeriesDate = ds.ContentDate = study_date.strftime("%Y%m%d")
    ds.StudyTime = "093000"
    ds.StudyID = "1"
    ds.AccessionNumber = f"ACC{int(patient.name) + 1:06d}"
    ds.StudyDescription = "Oncology follow-up"
    ds.InstitutionName = f"{patient['site']} General Hospital"
    ds.ReferringPhysicianName = ""
    ds.FrameOfReferenceUID = _uid(seed, patient["PatientID"], "frame")
    ds.PositionReferenceIndicator = ""
    return ds


def _write_series(
    folder: Path,
    base: Dataset,
    *,
    modality: str,
    series_number: int,
    slices: list[np.ndarray],
    slice_mm: float,
    pixel_mm: float,
    transfer_syntax: UID,
    attributes: dict[str, object],
    seed: int,
) -> None:
    folder.mkdir(parents=True, exist_ok=True)
    sop_class = CTImageStorage if modality == "CT" else MRImageStorage
    series_uid = _series_uid(seed, base.PatientID, modality)
    size = slices[0].shape[0]
    for index, stored in enumerate(slices):
        ds = Dataset()
        ds.update(base)
        for keyword, value in attributes.items():
            setattr(ds, keyword, value)
        ds.SOPClassUID = sop_class
        ds.SOPInstanceUID = _uid(seed, base.PatientID, modality, index)
        ds.Modality = modality
        ds.SeriesInstanceUID = series_uid
        ds.SeriesNumber = series_number
        ds.InstanceNumber = index + 1
        ds.ImageType = ["ORIGINAL", "PRIMARY", "AXIAL"]
        z = (index - (len(slices) - 1) / 2) * slice_mm
        ds.ImagePositionPatient = [-FIELD_OF_VIEW_MM / 2, -FIELD_OF_VIEW_MM / 2, round(z, 3)]
        ds.ImageOrientationPatient = [1, 0, 0, 0, 1, 0]
        ds.SliceLocation = round(z, 3)
        ds.SliceThickness = slice_mm
        ds.PixelSpacing = [round(pixel_mm, 6), round(pixel_mm, 6)]
        ds.Rows = ds.Columns = size
        ds.SamplesPerPixel = 1
        ds.PhotometricInterpretation = "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.file_meta = FileMetaDataset()
        ds.file_meta.MediaStorageSOPClassUID = sop_class
        ds.file_meta.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta.ImplementationClassUID = PYDICOM_IMPLEMENTATION_UID
        pixels = stored.astype(np.uint16)
        if transfer_syntax in _COMPRESSED:
            ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
            ds.compress(transfer_syntax, pixels)
        else:
            ds.file_meta.TransferSyntaxUID = transfer_syntax
            ds.PixelData = pixels.tobytes()
        ds.save_as(folder / f"{index + 1:04d}.dcm", enforce_file_format=True)


def _write_patient(
    images: Path,
    patient: pd.Series,
    capture: pd.Series,
    size: int,
    seed: int,
    modalities: tuple[str, ...],
) -> None:
    rng = np.random.default_rng([seed, int(patient.name)])
    site = next(s for s in SITES if s.name == patient["site"])
    study_date = datetime.date(2016, 1, 4) + datetime.timedelta(days=int(rng.integers(0, 7 * 365)))
    base = _base_dataset(patient, study_date, seed)
    pixel_mm = FIELD_OF_VIEW_MM / size
    # Series cycle through the transfer syntaxes, so three patients already use all of them.
    ct_syntax, mr_syntax = (
        TRANSFER_SYNTAXES[(2 * int(patient.name) + k) % len(TRANSFER_SYNTAXES)] for k in (0, 1)
    )
    folder = images / patient["PatientID"]

    if "CT" in modalities:
        _write_ct(folder, base, patient, capture, site, rng, size, pixel_mm, ct_syntax, seed)
    if "MR" in modalities:
        _write_mr(folder, base, site, rng, size, mr_syntax, seed)


def _write_ct(
    folder: Path,
    base: Dataset,
    patient: pd.Series,
    capture: pd.Series,
    site: Site,
    rng: np.random.Generator,
    size: int,
    pixel_mm: float,
    syntax: UID,
    seed: int,
) -> None:
    slice_mm = capture["SliceThickness"]
    positions = [(i - (CT_SLICES - 1) / 2) * slice_mm for i in range(CT_SLICES)]
    _write_series(
        folder / "CT",
        base,
        modality="CT",
        series_number=1,
        slices=[
            np.clip(_body_phantom(size, z, patient["tumor_mm"], rng) + 1024, 0, 4095)
            for z in positions
        ],
        slice_mm=slice_mm,
        pixel_mm=pixel_mm,
        transfer_syntax=syntax,
        attributes={
            "Manufacturer": site.ct[0],
            "ManufacturerModelName": site.ct[1],
            "DeviceSerialNumber": capture["DeviceSerialNumber"],
            "ProtocolName": capture["ProtocolName"],
            "BodyPartExamined": "CHEST",
            "SeriesDescription": "CHEST W/O CONTRAST",
            "KVP": capture["KVP"],
            "XRayTubeCurrent": int(capture["XRayTubeCurrent"]),
            "ExposureTime": int(capture["ExposureTime"]),
            "Exposure": int(capture["Exposure"]),
            "CTDIvol": float(capture["CTDIvol"]),
            "ConvolutionKernel": capture["ConvolutionKernel"],
            "RescaleIntercept": -1024,
            "RescaleSlope": 1,
            "RescaleType": "HU",
            "WindowCenter": [40, -600],
            "WindowWidth": [400, 1500],
        },
        seed=seed,
    )


def _write_mr(
    folder: Path,
    base: Dataset,
    site: Site,
    rng: np.random.Generator,
    size: int,
    syntax: UID,
    seed: int,
) -> None:
    _write_series(
        folder / "MR",
        base,
        modality="MR",
        series_number=2,
        slices=[_brain_phantom(size, i, rng) for i in range(MR_SLICES)],
        slice_mm=5.0,
        pixel_mm=240.0 / size,
        transfer_syntax=syntax,
        attributes={
            "Manufacturer": site.mr[0],
            "ManufacturerModelName": site.mr[1],
            "BodyPartExamined": "BRAIN",
            "SeriesDescription": "T1 AXIAL",
            "MagneticFieldStrength": site.mr_tesla,
            "RepetitionTime": 500.0,
            "EchoTime": 12.0,
            "ScanningSequence": "SE",
            "SequenceVariant": "NONE",
            "ScanOptions": "",
            "MRAcquisitionType": "2D",
        },
        seed=seed,
    )


def demo_version(out: str | Path) -> int | None:
    """The version of the demo cohort written to the end in ``out`` (None: there is none)."""
    try:
        return int(json.loads((Path(out) / "cohort.json").read_text()).get("version", 1))
    except (OSError, ValueError, AttributeError):
        return None


def demo_is_complete(out: str | Path) -> bool:
    """True when ``out`` holds a demo cohort of this version written to the end."""
    return demo_version(out) == DEMO_VERSION


def write_demo(
    out: str | Path,
    patients: int = 100,
    seed: int = 0,
    size: int = 128,
    modalities: tuple[str, ...] = ("CT", "MR"),
) -> Path:
    """Write the demo cohort to ``out`` (which must not exist yet) and return its path.

    ``size`` is the image width and height in pixels; ``modalities`` the series written per
    patient. Writing goes to ``<out>.partial`` first, so an interrupted run never leaves a
    cohort that looks complete.
    """
    if patients < 1:
        raise ValueError(f"patients must be at least 1, got {patients}")
    out = Path(out).expanduser().resolve()
    if out.exists():
        raise FileExistsError(f"{out} exists already; choose another --out or remove it")
    partial = out.with_name(out.name + ".partial")
    shutil.rmtree(partial, ignore_errors=True)
    clinical = simulate_patients(patients, np.random.default_rng(seed))
    devices = simulate_devices(np.random.default_rng([seed, 1]))
    captures = simulate_captures(clinical, devices, np.random.default_rng([seed, 2]))
    for (_, patient), (_, capture) in zip(clinical.iterrows(), captures.iterrows()):
        _write_patient(partial / "images", patient, capture, size, seed, modalities)
    clinical.to_parquet(partial / "patients.parquet", index=False)
    devices.to_parquet(partial / "devices.parquet", index=False)
    simulate_reads(captures, seed, np.random.default_rng([seed, 3])).to_parquet(
        partial / "reads.parquet", index=False
    )
    description = {
        "version": DEMO_VERSION,
        "patients": patients,
        "seed": seed,
        "image_size": size,
        "series_per_patient": {m: {"CT": CT_SLICES, "MR": MR_SLICES}[m] for m in modalities},
        "transfer_syntaxes": [str(uid) for uid in TRANSFER_SYNTAXES],
        "outcome": {
            "model": "Cox proportional hazards, Weibull baseline, administrative censoring",
            "true_coefficients": TRUE_COEFFICIENTS,
            "weibull_shape": WEIBULL_SHAPE,
            "weibull_scale_months": WEIBULL_SCALE_MONTHS,
            "follow_up_months": list(FOLLOW_UP_MONTHS),
        },
        "devices": {
            "count": DEVICES,
            "model": "Cox proportional hazards, Weibull baseline, administrative censoring",
            "true_coefficients": DEVICE_TRUE_COEFFICIENTS,
            "weibull_shape": DEVICE_WEIBULL_SHAPE,
            "weibull_scale_months": DEVICE_WEIBULL_SCALE_MONTHS,
            "follow_up_months": list(DEVICE_FOLLOW_UP_MONTHS),
        },
        "protocols": [protocol.name for protocol in PROTOCOLS],
        "readers": READERS,
        "reads_per_series": READS_PER_SERIES,
    }
    (partial / "cohort.json").write_text(json.dumps(description, indent=2) + "\n")
    partial.rename(out)
    return out
