"""A PACS over DIMSE: a real Orthanc (Debian package ``orthanc``) started on loopback ports
with a temporary configuration and storage, loaded with pydicom's test files through its REST
API; C-FIND at three levels against Orthanc's own answers, ``pull`` fetching exactly the
matching instances (and only the missing ones when run again), the ``dimse`` source and
``dicomsql pull``, and the errors of a wrong AE title or a stopped PACS."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import pydicom
import pytest

from dicomsql import pacs
from dicomsql.server import free_port

from .conftest import PYDICOM_TEST_FILES, dicomsql_command, require_command

#: Files of several modalities and transfer syntaxes (JPEG 2000, RLE, big endian...).
LOADED = (
    "CT_small.dcm",
    "MR_small.dcm",
    "JPEG2000.dcm",
    "SC_rgb_rle.dcm",
    "rtplan.dcm",
    "JPEG-lossy.dcm",
    "ExplVR_BigEnd.dcm",
    "693_J2KI.dcm",
)


@dataclass
class Orthanc:
    """A running Orthanc: its DICOM ``port`` (AE title ORTHANC, which answers only the calling
    AE DICOMSQL), its REST ``url`` and ``process``."""

    port: int
    url: str
    process: subprocess.Popen

    def rest(self, path: str, body: dict | bytes | None = None):
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        request = urllib.request.Request(self.url + path, data=data)
        with urllib.request.urlopen(request, timeout=30) as response:
            return json.load(response)

    def peer(self, **changes) -> pacs.Peer:
        return pacs.Peer(
            **{
                "host": "127.0.0.1",
                "port": self.port,
                "called_ae": "ORTHANC",
                "timeout": 10.0,
                **changes,
            }
        )


def start_orthanc(folder: Path) -> Orthanc:
    binary = require_command("Orthanc", "orthanc")
    http, dicom = free_port(), free_port()
    config = {
        "Name": "dicomsql-test",
        "StorageDirectory": str(folder / "storage"),
        "IndexDirectory": str(folder / "index"),
        "HttpPort": http,
        "DicomPort": dicom,
        "DicomAet": "ORTHANC",
        "DicomCheckCalledAet": True,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        # only the AE titles of DicomModalities may associate (none of the defaults' "always")
        **dict.fromkeys(
            (
                "DicomAlwaysAllowEcho",
                "DicomAlwaysAllowStore",
                "DicomAlwaysAllowFind",
                "DicomAlwaysAllowFindWorklist",
                "DicomAlwaysAllowGet",
                "DicomAlwaysAllowMove",
            ),
            False,
        ),
        "DicomModalities": {
            "dicomsql": {"AET": "DICOMSQL", "Host": "127.0.0.1", "Port": free_port()}
        },
        "SaveJobs": False,
        "Plugins": [],
    }
    (folder / "orthanc.json").write_text(json.dumps(config))
    process = subprocess.Popen(
        [binary, f"--logfile={folder / 'orthanc.log'}", "--no-jobs", str(folder / "orthanc.json")],
        cwd=folder,
        env={**os.environ, "TCP_NODELAY": "1"},  # DCMTK's switch: else ~40 ms per round trip
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    orthanc = Orthanc(dicom, f"http://127.0.0.1:{http}", process)
    deadline = time.monotonic() + 30
    while True:
        if process.poll() is not None:
            pytest.fail(
                f"Orthanc exited: {(folder / 'orthanc.log').read_text(errors='replace')[-2000:]}"
            )
        try:
            orthanc.rest("/system")
            return orthanc
        except OSError:
            if time.monotonic() > deadline:
                process.kill()
                pytest.fail("Orthanc did not answer within 30 s")
            time.sleep(0.05)


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.fixture(scope="module")
def orthanc(tmp_path_factory):
    folder = tmp_path_factory.mktemp("orthanc")
    server = start_orthanc(folder)
    for name in LOADED:
        server.rest("/instances", (PYDICOM_TEST_FILES / name).read_bytes())
    yield server
    stop(server.process)


def _rest_uids(orthanc: Orthanc, level: str, key: str, query: dict | None = None) -> set[str]:
    found = orthanc.rest("/tools/find", {"Level": level, "Query": query or {}, "Expand": True})
    return {item["MainDicomTags"][key] for item in found}


def _loaded() -> list[pydicom.Dataset]:
    return [pydicom.dcmread(PYDICOM_TEST_FILES / name, stop_before_pixels=True) for name in LOADED]


@pytest.mark.parametrize(
    ("level", "rest_level", "key"),
    [
        ("STUDY", "Study", "StudyInstanceUID"),
        ("SERIES", "Series", "SeriesInstanceUID"),
        ("IMAGE", "Instance", "SOPInstanceUID"),
    ],
)
def test_c_find_at_each_level_equals_orthancs_own_answers(orthanc, level, rest_level, key):
    answers = pacs.find(orthanc.peer(), level, {})
    assert {str(a[key].value) for a in answers} == _rest_uids(orthanc, rest_level, key)
    assert len(answers) == len({str(a[key].value) for a in answers}) > 1
    assert all(a.QueryRetrieveLevel == level for a in answers)
    modality = pacs.find(orthanc.peer(), level, {"PatientID": "4MR1"})
    assert {str(a.PatientID) for a in modality} == {"4MR1"}
    expected = (
        {str(d[key].value) for d in _loaded() if d.get("PatientID") == "4MR1"}
        if level == "IMAGE"
        else None
    )
    if expected is not None:
        assert {str(a.SOPInstanceUID) for a in modality} == expected


def test_matching_keys_take_wildcards_and_ranges(orthanc):
    studies = pacs.find(orthanc.peer(), "STUDY", {"StudyDate": "20040101-20041231"})
    expected = {
        str(d.StudyInstanceUID) for d in _loaded() if str(d.get("StudyDate", "")).startswith("2004")
    }
    assert {str(s.StudyInstanceUID) for s in studies} == expected
    assert {
        str(s.PatientID) for s in pacs.find(orthanc.peer(), "STUDY", {"PatientID": "*MR*"})
    } >= {"4MR1"}
    with pytest.raises(ValueError, match="'Nonsense' is not a DICOM keyword"):
        pacs.find(orthanc.peer(), "STUDY", {"Nonsense": "1"})


def test_pull_fetches_exactly_the_matching_instances_then_only_what_is_missing(orthanc, tmp_path):
    query = {"PatientID": "4MR1"}
    wanted = {str(d.SOPInstanceUID): d for d in _loaded() if d.get("PatientID") == "4MR1"}
    seen = []
    pulled = pacs.pull(orthanc.peer(), query, str(tmp_path), lambda p: seen.append(p.retrieved))
    files = sorted(tmp_path.rglob("*.dcm"))
    assert (pulled.found, pulled.present, pulled.retrieved, pulled.failures) == (
        len(wanted),
        0,
        len(wanted),
        [],
    )
    assert {f.stem for f in files} == set(wanted) and seen == list(range(1, len(wanted) + 1))
    for path in files:
        copy = pydicom.dcmread(path)
        assert path.relative_to(tmp_path).parts[:2] == (
            copy.StudyInstanceUID,
            copy.SeriesInstanceUID,
        )
        assert os.stat(path).st_mode & 0o777 == 0o600
    assert not [p for p in tmp_path.rglob(".*")]  # nothing half-written left behind
    files[0].unlink()
    again = pacs.pull(orthanc.peer(), query, str(tmp_path))
    assert (again.present, again.retrieved) == (len(wanted) - 1, 1)
    # every loaded instance, whatever its transfer syntax, comes back with its pixels
    everything = pacs.pull(orthanc.peer(), {}, str(tmp_path / "all"))
    assert everything.retrieved == len(LOADED) and not everything.failures
    for original in LOADED:
        source = pydicom.dcmread(PYDICOM_TEST_FILES / original)
        [copy] = (tmp_path / "all").rglob(f"{source.SOPInstanceUID}.dcm")
        copied = pydicom.dcmread(copy)
        assert copied.file_meta.TransferSyntaxUID == source.file_meta.TransferSyntaxUID
        if "PixelData" in source:
            assert copied.PixelData == source.PixelData  # as stored, not transcoded


def refused_message(peer: str, calling: str, which: str) -> str:
    """The error of a PACS refusing an AE title: the rejection, or (when pynetdicom sees the
    connection closed before it reads the rejection: see dicomsql.pacs) the closed association."""
    return (
        rf"^{re.escape(peer)} \(calling AE {calling}\) (refused the association: {which} AE title "
        r"not recognised|ended the association without accepting it \(is the calling AE title "
        r"registered there, and the called AE title right\?\))$"
    )


def test_a_wrong_ae_title_or_a_stopped_pacs_is_an_error_naming_it(orthanc, tmp_path):
    port = orthanc.port
    with pytest.raises(
        pacs.PacsError, match=refused_message(f"WRONG@127.0.0.1:{port}", "DICOMSQL", "Called")
    ):
        pacs.find(orthanc.peer(called_ae="WRONG"), "STUDY", {})
    with pytest.raises(
        pacs.PacsError, match=refused_message(f"ORTHANC@127.0.0.1:{port}", "STRANGER", "Calling")
    ):
        pacs.pull(orthanc.peer(calling_ae="STRANGER"), {}, str(tmp_path))
    closed = free_port()
    with pytest.raises(
        pacs.PacsError,
        match=rf"^ORTHANC@127.0.0.1:{closed} .* could not be reached: Connection refused$",
    ):
        pacs.pull(orthanc.peer(port=closed, timeout=2.0), {}, str(tmp_path))
    assert not list(tmp_path.iterdir())
    with pytest.raises(ValueError, match="calling_ae must be 1 to 16 ASCII characters"):
        orthanc.peer(calling_ae="A" * 17)
    with pytest.raises(ValueError, match="a PACS is dimse://CALLED_AE@host:port"):
        pacs.Peer.parse("dimse://127.0.0.1:104")


def test_dimse_views_have_the_dicom_sources_typed_columns(spark, orthanc):
    spark.sql(
        f"CREATE OR REPLACE TEMPORARY VIEW pacs_series USING dimse OPTIONS (host '127.0.0.1', "
        f"port '{orthanc.port}', called_ae 'ORTHANC', level 'series', query '{{\"Modality\": \"MR\"}}')"
    )
    rows = spark.sql("SELECT * FROM pacs_series").collect()
    dicom_columns = (
        spark.read.format("dicom").load(str(PYDICOM_TEST_FILES / "CT_small.dcm")).columns
    )
    assert spark.table("pacs_series").columns == dicom_columns
    expected = _rest_uids(orthanc, "Series", "SeriesInstanceUID", {"Modality": "MR"})
    assert {r.SeriesInstanceUID for r in rows} == expected and {r.Modality for r in rows} == {"MR"}
    assert all(r.path.startswith(f"dimse://ORTHANC@127.0.0.1:{orthanc.port}/") for r in rows)
    assert all(json.loads(r.meta)["00080060"]["Value"] == ["MR"] for r in rows)
    spark.sql(
        f"CREATE OR REPLACE TEMPORARY VIEW pacs_bad USING dimse OPTIONS (host '127.0.0.1', "
        f"port '{orthanc.port}', called_ae 'NOPE', timeout '5')"
    )
    with pytest.raises(
        Exception, match=rf"NOPE@127.0.0.1:{orthanc.port} \(calling AE DICOMSQL\) (refused|ended)"
    ):
        spark.sql("SELECT count(*) FROM pacs_bad").collect()
    with pytest.raises(Exception, match="dimse source: option called_ae is required"):
        spark.sql("CREATE OR REPLACE TEMPORARY VIEW p USING dimse OPTIONS (host 'h', port '1')")


def test_dicomsql_pull_retrieves_then_ingests_into_a_catalog(orthanc, tmp_path, cli_env):
    command = [
        dicomsql_command(),
        "pull",
        "--from",
        f"dimse://ORTHANC@127.0.0.1:{orthanc.port}",
        "--to",
        str(tmp_path / "pulled"),
        "--query",
        '{"Modality": "CT"}',
    ]
    first = subprocess.run(command, env=cli_env, capture_output=True, text=True, timeout=300)
    expected = len(_rest_uids(orthanc, "Instance", "SOPInstanceUID", {"Modality": "CT"}))
    assert first.returncode == 0, first.stderr
    assert f"pulled {expected} instances from ORTHANC@127.0.0.1:{orthanc.port}" in first.stdout
    assert f"{expected} of {expected} instances" in first.stderr
    again = subprocess.run(
        [*command, "--table", "pulled_ct"], env=cli_env, capture_output=True, text=True, timeout=600
    )
    assert again.returncode == 0, again.stderr
    assert "pulled 0 instances" in again.stdout and f"{expected} already there" in again.stdout
    assert "pulled_ct" in again.stdout  # the catalog's refresh summary
    refused = subprocess.run(
        [*command[:3], f"dimse://WRONG@127.0.0.1:{orthanc.port}", *command[4:]],
        env=cli_env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert refused.returncode == 2
    message = refused.stderr.strip().removeprefix("dicomsql pull: error: ")
    assert re.match(
        refused_message(f"WRONG@127.0.0.1:{orthanc.port}", "DICOMSQL", "Called"), message
    )


def test_dimse_options_are_checked_before_any_connection():
    from dicomsql.options import OptionError
    from dicomsql.source import DimseDataSource

    given = {"host": "127.0.0.1", "port": "104", "called_ae": "PACS", "query": "[1]"}
    with pytest.raises(OptionError, match="dimse source: option query must be a JSON object"):
        DimseDataSource(given).parsed
    with pytest.raises(OptionError, match="dimse source: option level must be one of STUDY"):
        DimseDataSource({**given, "query": "{}", "level": "patient"}).parsed
