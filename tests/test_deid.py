"""De-identification (PS3.15 Annex E) of the ``meta`` DICOM JSON of pydicom's shipped files and
the demo: every attribute of Table E.1-1 ends as its action says."""

from __future__ import annotations

import copy
import datetime
import json

import pytest

from dicomsql.demo import write_demo
from dicomsql.dicom.deid import ACTIONS, OPTIONS, deidentify, pseudonym, remap_uid, shift_days
from dicomsql.dicom.header import HeaderColumns, read_header
from dicomsql.options import OptionError

from .reference import READABLE

KEY = b"a key of the test"

#: What each compound action of Table E.1-1 becomes (the form a Type 1 or 2 attribute needs).
COMPOUND = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}

#: The options tried, each with the Table E.1-1 columns it turns on.
OPTION_SETS = {
    "basic": ({}, []),
    "retain everything": (
        {
            "retain_uids": "true",
            "retain_dates": "true",
            "retain_patient_characteristics": "true",
            "retain_device_identity": "true",
            "retain_institution_identity": "true",
        },
        [
            "retain_uids",
            "retain_long_full_dates",
            "retain_patient_characteristics",
            "retain_device_identity",
            "retain_institution_identity",
        ],
    ),
    "shifted dates, cleaned descriptors": (
        {"date_shift": "true", "clean_descriptors": "true"},
        ["retain_long_modified_dates", "clean_descriptors"],
    ),
}


def _meta(path) -> dict:
    with open(path, "rb") as fp:
        return json.loads(read_header(fp, HeaderColumns.core(), source_uri=str(path)).meta)


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, dict]:
    """The meta of every readable shipped file and of two demo patients' files."""
    demo = write_demo(tmp_path_factory.mktemp("deid") / "demo", patients=2, seed=3, size=16)
    paths = [*READABLE, *sorted((demo / "images").rglob("*.dcm"))[::10]]
    return {str(path): _meta(path) for path in paths}


#: File meta elements kept: version, SOP class and instance, transfer syntax, implementation.
FILE_META_KEPT = {0x0001, 0x0002, 0x0003, 0x0010, 0x0012, 0x0013}


def _expected(tag: str, columns: list[str], default: str = "K") -> str:
    group, element = int(tag[:4], 16), int(tag[4:], 16)
    if group % 2 or element == 0 or (group == 2 and element not in FILE_META_KEPT):
        return "X"  # private, group lengths, the file meta's AE titles and private data
    if 0x5000 <= group <= 0x50FF or 0x6000 <= group <= 0x60FF:
        return "X"  # curves and overlays, whole
    row = ACTIONS.get(tag)
    if row is None:
        return default
    action = row.basic
    for column in columns:
        action = row.options.get(column, action)
    return COMPOUND.get(action, action)


def _check(original, result, columns, shift, seen, default="K"):
    for tag, element in original.items():
        action = _expected(tag, columns, default)
        seen[action] = seen.get(action, 0) + 1
        vr, values = element.get("vr"), element.get("Value")
        if action == "X":
            assert tag not in result, tag
            continue
        assert result[tag]["vr"] == vr, tag
        if action == "Z" or (action == "K" and "BulkDataURI" in element):
            assert result[tag] == {"vr": vr}, tag
        elif vr == "SQ" and action == "D":
            assert result[tag] == {"vr": vr, "Value": [{}]}, tag  # a dummy sequence
        elif vr == "SQ":
            items = result[tag].get("Value", [])
            assert len(items) == len(values or []), tag
            for item, done in zip(values or [], items):
                _check(item, done, columns, shift, seen, "C" if action == "C" else "K")
        elif action == "K":
            assert result[tag] == element, tag
        elif action == "U" or (action == "D" and vr == "UI"):
            remapped = [None if uid is None else remap_uid(uid, KEY) for uid in values or []]
            assert result[tag].get("Value", []) == remapped, tag  # an empty UID stays empty
        elif action == "D":
            assert result[tag].get("Value") or result[tag].get("InlineBinary"), tag
            if vr in ("LO", "SH", "CS", "ST", "LT", "UT", "AE"):
                assert result[tag]["Value"] == [
                    pseudonym(str(v or ""), KEY) for v in values or [None]
                ]
        elif action == "C" and vr == "DA" and shift is not None:
            assert result[tag].get("Value", []) == [_back(v, shift) for v in values or []], tag


def _back(value: str, days: int) -> str:
    date = datetime.datetime.strptime(value.replace(".", ""), "%Y%m%d").date()
    date -= datetime.timedelta(days=days)
    return date.strftime("%Y%m%d")


@pytest.mark.parametrize("name", OPTION_SETS)
def test_every_table_attribute_ends_as_its_action_says(models, name):
    options, columns = OPTION_SETS[name]
    seen: dict[str, int] = {}
    for path, meta in models.items():
        before = copy.deepcopy(meta)
        result = deidentify(meta, options, KEY)
        assert meta == before  # the input is left as it is
        assert path not in json.dumps(result)  # bulk data references name the file
        owner = next(  # the patient, or without a PatientID the study
            (meta[t]["Value"][0] for t in ("00100020", "0020000D") if meta.get(t, {}).get("Value")),
            "",
        )
        shift = shift_days(owner, KEY) if "date_shift" in options else None
        _check({t: e for t, e in meta.items() if t not in _RECORDED}, result, columns, shift, seen)
        assert result["00120062"] == {"vr": "CS", "Value": ["YES"]}
    assert {"X", "Z", "K"} <= set(seen), seen
    if name != "retain everything":
        assert seen.get("U", 0) > 100 and seen.get("D", 0) > 50, seen


#: What de-identification writes itself.
_RECORDED = {"00120062", "00120063", "00120064", "00280303"}


def test_uids_and_pseudonyms_join_across_files_and_runs(models):
    demo = [meta for path, meta in models.items() if "DEMO-0001" in path]
    results = [deidentify(meta, None, KEY) for meta in demo]
    studies = {r["0020000D"]["Value"][0] for r in results}
    patients = {r["00100020"]["Value"][0] for r in results}
    assert len(studies) == len({m["0020000D"]["Value"][0] for m in demo}) >= 1
    assert patients == {pseudonym("DEMO-0001", KEY)}
    assert studies.isdisjoint(m["0020000D"]["Value"][0] for m in demo)
    assert results == [deidentify(meta, None, KEY) for meta in demo]  # deterministic
    assert deidentify(demo[0], None, b"another key")["0020000D"] != results[0]["0020000D"]
    sop = results[0]["00080018"]["Value"][0]
    assert results[0]["00020003"]["Value"] == [sop]  # MediaStorageSOPInstanceUID follows it
    assert sop.startswith("2.25.") and len(sop) <= 64


def test_date_shift_keeps_intervals_within_a_patient(models):
    demo = [meta for path, meta in models.items() if "DEMO-0002" in path]
    options = {"date_shift": "true"}
    for meta in demo:
        result = deidentify(meta, options, KEY)
        for tag in ("00080020", "00080021", "00080023"):  # study, series, content dates
            if meta.get(tag, {}).get("Value"):
                days = _days(meta[tag]["Value"][0]) - _days(result[tag]["Value"][0])
                assert days == shift_days("DEMO-0002", KEY), tag
        assert result["00280303"]["Value"] == ["MODIFIED"]
        assert "00100030" not in result or not result["00100030"].get("Value")  # birth date: Z


def _days(value: str) -> int:
    return datetime.datetime.strptime(value, "%Y%m%d").toordinal()


def test_private_elements_are_removed_unless_kept(models):
    meta = next(m for p, m in models.items() if p.endswith("CT_small.dcm"))
    assert meta["00090010"]["Value"] == ["GEMS_IDEN_01"]
    removed = deidentify(meta, None, KEY)
    assert not [tag for tag in removed if int(tag[:4], 16) % 2]
    kept = deidentify(meta, {"keep_private": "GEMS_IDEN_01:0009xx01"}, KEY)
    assert {tag for tag in kept if tag.startswith("0009")} == {"00090010", "00091001"}
    assert kept["00091001"] == meta["00091001"]
    assert "113111" not in json.dumps(kept["00120064"])  # kept as they are, not cleaned


def test_clean_descriptors_masks_the_identifying_values():
    meta = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Johanna"}]},
        "00100020": {"vr": "LO", "Value": ["MRN-77881"]},
        "0008103E": {"vr": "LO", "Value": ["Head CT for johanna DOE, MRN-77881"]},
        "00081030": {"vr": "LO", "Value": ["Routine head"]},
    }
    basic = deidentify(meta, None, KEY)
    assert "0008103E" not in basic and "00081030" not in basic  # X without the option
    cleaned = deidentify(meta, {"clean_descriptors": "true"}, KEY)
    assert cleaned["0008103E"]["Value"] == ["Head CT for * *, *"]
    assert cleaned["00081030"]["Value"] == ["Routine head"]
    assert cleaned["00100010"] == {"vr": "PN"}  # Z


def test_the_method_is_recorded():
    result = deidentify({}, {"retain_uids": "true", "clean_descriptors": "true"}, KEY)
    codes = [item["00080100"]["Value"][0] for item in result["00120064"]["Value"]]
    assert codes == ["113100", "113110", "113105"]
    assert result["00120063"]["Value"][0] == "Basic Application Confidentiality Profile"
    assert result["00280303"]["Value"] == ["REMOVED"]
    every = {option.name: "true" for option in OPTIONS if option.default is False}
    del every["retain_dates"]
    methods = deidentify({}, every, KEY)["00120063"]["Value"]
    assert len(methods) == len(every) + 1 and all(len(value) <= 64 for value in methods)  # LO


def test_what_the_table_cannot_say_is_removed_or_dummied():
    """Fixed cases: text in a dummied sequence, overlays, the file meta, group lengths, keys
    in lower case or that are no tags, missing VRs and values that are not what their VR says."""
    meta = {
        "00020016": {"vr": "AE", "Value": ["MODALITY_AE"]},  # SourceApplicationEntityTitle
        "00020000": {"vr": "UL", "Value": [200]},
        "00080000": {"vr": "UL", "Value": [400]},
        "0040A730": {  # ContentSequence (D): a report's text
            "vr": "SQ",
            "Value": [{"0040A160": {"vr": "UT", "Value": ["Patient John Doe, MRN 12345"]}}],
        },
        "60001500": {"vr": "LO", "Value": ["drawn by Dr Smith"]},  # OverlayLabel
        "60000010": {"vr": "US", "Value": [512]},
        "0008009c": {"vr": "PN", "Value": [{"Alphabetic": "Doe^Jane"}]},  # lower-case key
        "not a tag": {"vr": "LO", "Value": ["anything"]},
        "00100030": {"Value": ["19600101"]},  # no VR: PatientBirthDate (Z)
        "00080021": {"vr": "DA", "Value": [20200101, "00010102"]},  # a number; year 1
        "0008002A": {"vr": "DT", "Value": ["20200101-20200301"]},  # a range
        "00080018": {"vr": "UI", "Value": [1234]},  # a number as a UID
        "00081140": {"vr": "SQ", "Value": [None, {"00081155": {"vr": "UI", "Value": ["1.2.3"]}}]},
        "00181000": {"vr": "OB", "InlineBinary": "AAE="},  # DeviceSerialNumber (D) as bytes
    }
    result = deidentify(meta, {"date_shift": "true"}, KEY)
    text = json.dumps(result)
    for word in ("MODALITY_AE", "John", "12345", "Smith", "Jane", "anything", "19600101"):
        assert word not in text, word
    assert result["0040A730"] == {"vr": "SQ", "Value": [{}]}
    assert not [tag for tag in result if tag.startswith("6000") or tag.endswith("0000")]
    assert result["0008009C"] == {"vr": "PN"} and "00020016" not in result
    assert result["00100030"] == {"vr": "UN"}
    assert result["00080021"]["Value"][1] is None  # a date that cannot move back is emptied
    assert result["0008002A"]["Value"] == [None]
    assert result["00080018"]["Value"] == [remap_uid("1234", KEY)]
    assert result["00081140"]["Value"] == [
        {"00081155": {"vr": "UI", "Value": [remap_uid("1.2.3", KEY)]}}
    ]
    assert result["00181000"] == {"vr": "OB", "InlineBinary": "AAAAAAAAAAA="}


def test_clean_descriptors_masks_names_in_sequences_and_every_form():
    meta = {
        "00100010": {"vr": "PN", "Value": [{"Alphabetic": "Wu^Li", "Ideographic": "山田^太郎"}]},
        "00081084": {  # AdmittingDiagnosesCodeSequence: X, C with clean_descriptors
            "vr": "SQ",
            "Value": [{"00080104": {"vr": "LO", "Value": ["CT for Wu, 山田 (Wurst diet)"]}}],
        },
        "00081062": {  # PhysiciansReadingStudyIdentificationSequence (X): its names count too
            "vr": "SQ",
            "Value": [{"00401101": {"vr": "SQ", "Value": []}}],
        },
    }
    cleaned = deidentify(meta, {"clean_descriptors": "true"}, KEY)
    meaning = cleaned["00081084"]["Value"][0]["00080104"]["Value"][0]
    assert meaning == "CT for *, * (Wurst diet)"  # whole words only


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"retain_uid": "true"}, "unknown option 'retain_uid'"),
        ({"retain_uids": "maybe"}, "option retain_uids must be"),
        ({"keep_private": "0009xx01"}, "option keep_private must be private elements as"),
        ({"retain_dates": "true", "date_shift": "true"}, "exclude each other"),
    ],
)
def test_bad_options_name_the_option(options, message):
    with pytest.raises(OptionError, match=message):
        deidentify({}, options, KEY)


def test_the_profile_documentation_is_up_to_date():
    from pathlib import Path

    from dicomsql.docs import deidentification_markdown

    page = Path(__file__).parent.parent / "docs" / "deidentification.md"
    assert page.read_text(encoding="utf-8") == deidentification_markdown(), (
        "docs/deidentification.md is stale: run python -m dicomsql.docs"
    )
    assert deidentification_markdown().count("\n| ") == len(ACTIONS) + len(OPTIONS) + 2


# -- the key: a file of the server's, read by every worker


def test_a_key_file_is_made_owner_only_and_checked(tmp_path, monkeypatch):
    import os
    import stat

    from dicomsql.errors import DicomsqlError
    from dicomsql.keys import DEID_KEY_VARIABLE, deid_key, prepare_key_file

    made = prepare_key_file(tmp_path / "home" / "deid.key", create=True)
    assert stat.S_IMODE(made.stat().st_mode) == 0o600
    assert len(made.read_text().strip()) == 64
    assert prepare_key_file(made, create=True).read_bytes() == made.read_bytes()  # kept
    monkeypatch.setenv(DEID_KEY_VARIABLE, str(made))
    assert deid_key() == made.read_bytes().strip()

    from dicomsql import keys

    first = made.read_bytes()
    keys._write_new_key(made)  # a second process, made late: the first one's key stays
    assert made.read_bytes() == first
    assert [p.name for p in made.parent.iterdir()] == ["deid.key"]  # no temporary left
    with pytest.raises(DicomsqlError, match="does not exist"):
        prepare_key_file(tmp_path / "none.key", create=False)
    with pytest.raises(DicomsqlError, match="must be a regular file of this user's"):
        prepare_key_file(tmp_path, create=False)
    short = tmp_path / "short.key"
    short.write_text("abc")
    short.chmod(0o600)
    with pytest.raises(DicomsqlError, match="less than 16 bytes"):
        prepare_key_file(short, create=False)
    os.chmod(made, 0o644)
    with pytest.raises(DicomsqlError, match="readable by others than its owner: chmod 600"):
        prepare_key_file(made, create=False)


def test_serve_refuses_a_key_file_others_can_read(cli_env, tmp_path):
    from dicomsql.server import free_port

    from .conftest import run_dicomsql

    key = tmp_path / "shared.key"
    key.write_text("0123456789abcdef0123456789abcdef\n")
    key.chmod(0o644)
    port = str(free_port())
    started = run_dicomsql("serve", "--deid-key-file", str(key), "--port", port, env=cli_env)
    assert started.returncode != 0
    assert f"--deid-key-file {key} is readable by others than its owner" in started.stderr
    assert "Traceback" not in started.stderr


def test_the_same_uids_in_every_partition_and_run(spark):
    query = (
        "SELECT path, dicom_tag(m, 'StudyInstanceUID'), dicom_tag(m, 'SOPInstanceUID'), "
        "dicom_tag(m, 'PatientID') FROM (SELECT path, dicom_deidentify(meta) AS m "
        "FROM (SELECT /*+ REPARTITION({n}) */ * FROM demo_images))"
    )
    runs = [
        {row[0]: tuple(row[1:]) for row in spark.sql(query.format(n=n)).collect()}
        for n in (1, 7, 7)
    ]
    assert runs[0] == runs[1] == runs[2] and len(runs[0]) > 50
    raw = spark.sql("SELECT path, StudyInstanceUID, PatientID FROM demo_images").collect()
    studies = {(r.PatientID, r.StudyInstanceUID) for r in raw}
    remapped = {(uids[2], uids[0]) for uids in runs[0].values()}
    assert len(remapped) == len(studies)  # one new study UID per study: series still group


def test_dicom_deidentify_in_sql_is_the_profile_with_the_homes_key(spark, spark_home):
    key = (spark_home / "deid.key").read_bytes().strip()
    rows = spark.sql(
        "SELECT meta, dicom_deidentify(meta) AS clean, "
        "dicom_deidentify(meta, map('retain_uids', 'true')) AS kept FROM demo_images "
        "WHERE meta IS NOT NULL"
    ).collect()
    assert len(rows) > 50  # the demo of the suite (six patients)
    for row in rows:
        meta = json.loads(row.meta)
        assert json.loads(row.clean) == deidentify(meta, None, key)
        assert json.loads(row.kept)["0020000D"] == meta["0020000D"]
    with pytest.raises(Exception, match="dicom_deidentify.*retain_uid"):
        spark.sql(
            "SELECT dicom_deidentify(meta, map('retain_uid', 'yes')) FROM demo_images"
        ).collect()
