"""De-identification of DICOM JSON (PS3.18 F.2, the ``meta`` column) by PS3.15 Annex E: the
Basic Application Level Confidentiality Profile and its options.

The profile is data: :data:`ACTIONS` is Table E.1-1 of PS3.15 (2024b), one row per attribute
with its Basic Profile action and each option's (``deid_actions.csv`` beside this module,
extracted from the standard by innolitics/dicom-standard, MIT). The actions:

- ``X`` removes the element; ``Z`` keeps it empty; ``K`` keeps it;
- ``D`` replaces each value with a dummy of its VR: text with a keyed pseudonym of the value
  (``ANON`` and 12 letters and digits, the same for the same value, so a patient's pseudonymous
  ID is one across studies and tables), dates with 19000101, numbers with 0;
- ``U`` replaces each UID with ``2.25.<integer>`` from a keyed hash (a version 8 UUID), the same
  in every row, partition and run with the same key, so studies, series and references join;
- ``C`` cleans: with ``date_shift`` dates move back by a whole number of days fixed per patient
  (from the key and the original PatientID), so intervals are kept; text has every identifying
  value of the dataset (what the profile removes or replaces, in 3 characters or more) masked
  with ``*``.

A compound action (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) leaves the element in the
form its most demanding IOD requires (``Z``, ``D``, ``D``, ``D``, ``U``): which type an
attribute has depends on the IOD, and an empty or dummy value reveals nothing. Sequences are
de-identified item by item, recursively, unless removed or emptied. A kept element whose value
is a ``BulkDataURI`` (it names the source file) is kept empty. Private elements (odd groups)
are removed unless ``keep_private`` names them; curve data (groups 50xx) and overlay data and
comments (60xx,3000 and 60xx,4000) are removed. Attributes the table does not list are kept.

The result records the method: PatientIdentityRemoved YES, DeidentificationMethod and the
DeidentificationMethodCodeSequence (CID 7050: 113100 and the options' codes), and
LongitudinalTemporalInformationModified.
"""

from __future__ import annotations

import base64
import csv
import datetime
import hashlib
import hmac
import re
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..options import Option, OptionError, Parsed, boolean, parse

__all__ = [
    "ACTIONS",
    "OPTIONS",
    "METHOD_CODES",
    "Action",
    "deidentify",
    "pseudonym",
    "remap_uid",
    "shift_days",
]


@dataclass(frozen=True)
class Action:
    """One row of PS3.15 Table E.1-1: the attribute, its Basic Profile action and the action
    each option takes instead (``K`` or ``C``), by option name."""

    tag: str  # eight hex digits; 50XXXXXX and 60XX3000 for repeating groups; PRIVATE
    keyword: str
    name: str
    basic: str
    options: Mapping[str, str]


def _read_actions() -> dict[str, Action]:
    with open(Path(__file__).with_name("deid_actions.csv"), newline="", encoding="utf-8") as table:
        rows = list(csv.DictReader(table))
    return {
        row["tag"]: Action(
            row["tag"],
            row["keyword"],
            row["name"],
            row["basic"],
            {column: action for column, action in list(row.items())[4:] if action},
        )
        for row in rows
    }


#: PS3.15 Table E.1-1 by tag.
ACTIONS: dict[str, Action] = _read_actions()

#: The options of ``dicom_deidentify`` and what each is in the standard: option name ->
#: (Table E.1-1's column, the CID 7050 code recorded, its meaning).
METHOD_CODES: dict[str, tuple[str | None, str, str]] = {
    "basic": (None, "113100", "Basic Application Confidentiality Profile"),
    "retain_uids": ("retain_uids", "113110", "Retain UIDs Option"),
    "retain_dates": (
        "retain_long_full_dates",
        "113106",
        "Retain Longitudinal Temporal Information Full Dates Option",
    ),
    "date_shift": (
        "retain_long_modified_dates",
        "113107",
        "Retain Longitudinal Temporal Information Modified Dates Option",
    ),
    "retain_patient_characteristics": (
        "retain_patient_characteristics",
        "113108",
        "Retain Patient Characteristics Option",
    ),
    "retain_device_identity": ("retain_device_identity", "113109", "Retain Device Identity Option"),
    "retain_institution_identity": (
        "retain_institution_identity",
        "113112",
        "Retain Institution Identity Option",
    ),
    "clean_descriptors": ("clean_descriptors", "113105", "Clean Descriptors Option"),
    "retain_safe_private": ("retain_safe_private", "113111", "Retain Safe Private Option"),
}

_OPTION_HELP = {
    "retain_uids": "Keep UIDs (Retain UIDs Option) instead of remapping them.",
    "retain_dates": "Keep dates and times (Retain Longitudinal Temporal Information with Full "
    "Dates Option).",
    "date_shift": "Keep dates moved back by a number of days fixed per patient, and times "
    "(Retain Longitudinal Temporal Information with Modified Dates Option).",
    "retain_patient_characteristics": "Keep the patient's sex, age, size, weight and the like "
    "(Retain Patient Characteristics Option).",
    "retain_device_identity": "Keep device names, serial numbers and identifiers (Retain Device "
    "Identity Option).",
    "retain_institution_identity": "Keep institution names and addresses (Retain Institution "
    "Identity Option).",
    "clean_descriptors": "Keep descriptions and comments with the dataset's identifying values "
    "masked, instead of removing them (Clean Descriptors Option).",
}


def _private_tags(text: str) -> tuple[tuple[str, str, str], ...]:
    """``creator:GGGGxxEE`` entries, comma-separated, as (creator, group, element) triples."""
    kept = set()
    for entry in filter(None, (part.strip() for part in text.split(","))):
        creator, _, tag = entry.rpartition(":")
        match = re.fullmatch(r"([0-9A-Fa-f]{4})[xX]{2}([0-9A-Fa-f]{2})", tag)
        if not creator or not match or int(match[1], 16) % 2 == 0:
            raise ValueError(
                "private elements as creator:GGGGxxEE with an odd group, comma-separated "
                "(e.g. 'GEMS_ACQU_01:0019xx06')"
            )
        kept.add((creator.strip(), match[1].upper(), match[2].upper()))
    return tuple(sorted(kept))


#: The options map of ``dicom_deidentify``: each option of :data:`METHOD_CODES` and
#: ``keep_private``.
OPTIONS = (
    *(Option(name, False, help, boolean) for name, help in _OPTION_HELP.items()),
    Option(
        "keep_private",
        (),
        "Private elements kept, as creator:GGGGxxEE, comma-separated "
        "(e.g. 'GEMS_ACQU_01:0019xx06'); every other private element is removed.",
        _private_tags,
    ),
)

_COMPOUND = {"X/Z": "Z", "X/D": "D", "Z/D": "D", "X/Z/D": "D", "X/Z/U*": "U"}
_TEXT_VRS = frozenset({"AE", "CS", "LO", "LT", "SH", "ST", "UC", "UT", "UR"})
_NUMBER_VRS = frozenset({"DS", "IS", "FL", "FD", "SS", "US", "SL", "UL", "SV", "UV"})
_DUMMY_DATES = {"DA": "19000101", "TM": "000000", "DT": "19000101000000", "AS": "000D"}
_PATIENT_ID = "00100020"
_MAX_SHIFT_DAYS = 3652
_MASKED_LENGTH = 3


def pseudonym(value: str, key: bytes) -> str:
    """The keyed pseudonym of a text value: ``ANON`` and 12 upper-case letters and digits, valid
    for every text VR (16 characters, as SH and CS allow).

    >>> pseudonym("PAT-0001", b"k") == pseudonym("PAT-0001", b"k") != pseudonym("PAT-0002", b"k")
    True
    >>> pseudonym("PAT-0001", b"k")
    'ANONFLWW65EJ7HZC'
    """
    digest = hmac.new(key, b"pseudonym\0" + value.encode("utf-8"), hashlib.sha256).digest()
    return "ANON" + base64.b32encode(digest).decode("ascii")[:12]


def remap_uid(uid: str, key: bytes) -> str:
    """The UID that replaces ``uid``: ``2.25.`` and the integer of a version 8 UUID made from a
    keyed hash of it (PS3.5 B.2), the same for the same UID and key.

    >>> remap_uid("1.2.840.113619.2.1", b"k")
    '2.25.98561541864180322978648122924585658890'
    """
    digest = bytearray(hmac.new(key, b"uid\0" + uid.encode("ascii"), hashlib.sha256).digest()[:16])
    digest[6] = (digest[6] & 0x0F) | 0x80  # version 8
    digest[8] = (digest[8] & 0x3F) | 0x80  # RFC 9562 variant
    return f"2.25.{int.from_bytes(digest, 'big')}"


def shift_days(patient_id: str, key: bytes) -> int:
    """How many days a patient's dates move back under ``date_shift``: 1 to 3652, fixed by the
    key and the original PatientID."""
    digest = hmac.new(key, b"date-shift\0" + patient_id.encode("utf-8"), hashlib.sha256).digest()
    return 1 + int.from_bytes(digest[:4], "big") % _MAX_SHIFT_DAYS


def _resolved(settings: Mapping[str, Any]) -> dict[str, str]:
    """Each listed tag's action under ``settings``: an option's action replaces the Basic
    Profile's, and a compound action becomes what its most demanding IOD needs."""
    columns = [METHOD_CODES[name][0] for name in _OPTION_HELP if settings[name]]
    resolved = {}
    for tag, action in ACTIONS.items():
        chosen = action.basic
        for column in columns:
            chosen = action.options.get(column, chosen)
        resolved[tag] = _COMPOUND.get(chosen, chosen)
    return resolved


@dataclass
class _Context:
    actions: Mapping[str, str]
    key: bytes
    shift: int | None  # days back, under date_shift
    identifying: tuple[str, ...]  # values masked in cleaned text, longest first
    keep_private: tuple[tuple[str, str, str], ...]


def deidentify(
    model: Mapping[str, Any], options: Mapping[str, str] | None, key: bytes
) -> dict[str, Any]:
    """The de-identified copy of a DICOM JSON ``model`` (PS3.15 Annex E's Basic Profile and the
    ``options`` of :data:`OPTIONS`); ``key`` fixes the pseudonyms, the UIDs and the date shift.
    ``model`` is left as it is."""
    settings = parse(options, OPTIONS, where="dicom_deidentify")
    if settings["retain_dates"] and settings["date_shift"]:
        raise OptionError(
            "dicom_deidentify: options retain_dates and date_shift exclude each other "
            "(dates are kept, or kept shifted)",
            "date_shift",
        )
    actions = _resolved(settings)
    patient_id = _first_text(model.get(_PATIENT_ID))
    context = _Context(
        actions,
        key,
        shift_days(patient_id or "", key) if settings["date_shift"] else None,
        _identifying(model, actions),
        settings["keep_private"],
    )
    result = _dataset(model, context)
    result.update(_method(settings))
    return dict(sorted(result.items()))


def _dataset(model: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    creators = {
        tag: _first_text(element)
        for tag, element in model.items()
        if int(tag[:4], 16) % 2 and 0x10 <= int(tag[4:], 16) <= 0xFF
    }
    result = {}
    for tag, element in model.items():
        action = _action(tag, context, creators)
        if action == "X":
            continue
        result[tag] = _apply(action, element, context)
    return result


def _action(tag: str, context: _Context, creators: Mapping[str, str | None]) -> str:
    group, element = int(tag[:4], 16), int(tag[4:], 16)
    if group % 2:
        return "K" if _kept_private(tag, context, creators) else "X"
    if 0x5000 <= group <= 0x50FF:
        return ACTIONS["50XXXXXX"].basic
    if 0x6000 <= group <= 0x60FF and element in (0x3000, 0x4000):
        return ACTIONS[f"60XX{element:04X}"].basic
    return context.actions.get(tag, "K")


def _kept_private(tag: str, context: _Context, creators: Mapping[str, str | None]) -> bool:
    group, element = tag[:4], int(tag[4:], 16)
    if not context.keep_private:
        return False
    if 0x10 <= element <= 0xFF:  # a private creator: kept when one of its elements is
        creator = creators.get(tag)
        return any(c == creator and g == group for c, g, _ in context.keep_private)
    creator = creators.get(f"{group}00{element >> 8:02X}")
    return (creator, group, f"{element & 0xFF:02X}") in context.keep_private


def _apply(action: str, element: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    vr = element.get("vr", "UN")
    if action == "Z" or (action != "D" and "BulkDataURI" in element):
        return {"vr": vr}  # a bulk data reference names the source file
    if vr == "SQ":
        return {"vr": vr, "Value": [_dataset(item, context) for item in element.get("Value", [])]}
    if action == "K":
        return dict(element)
    if action == "U" or (action == "D" and vr == "UI"):
        return _mapped(element, lambda uid: remap_uid(uid, context.key))
    if action == "D":
        return _dummy(element, context)
    return _cleaned(element, context)


def _mapped(element: Mapping[str, Any], change) -> dict[str, Any]:
    values = element.get("Value")
    if not values:
        return dict(element)
    return {**element, "Value": [None if value is None else change(value) for value in values]}


def _dummy(element: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    vr = element["vr"]
    values = element.get("Value") or [None]
    if vr == "PN":
        texts = [_person_text(value) for value in values]
        return {"vr": vr, "Value": [{"Alphabetic": pseudonym(text, context.key)} for text in texts]}
    if vr in _TEXT_VRS:
        return {"vr": vr, "Value": [pseudonym(str(value or ""), context.key) for value in values]}
    if vr in _DUMMY_DATES:
        return {"vr": vr, "Value": [_DUMMY_DATES[vr]] * len(values)}
    if vr in _NUMBER_VRS:
        return {"vr": vr, "Value": [0] * len(values)}
    if vr == "AT":
        return {"vr": vr, "Value": ["00000000"] * len(values)}
    return {"vr": vr, "InlineBinary": "AAA="}  # two zero bytes: OB, OW, UN and the like


def _cleaned(element: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    vr = element["vr"]
    if vr in ("DA", "DT") and context.shift is not None:
        return _mapped(element, lambda value: _shifted(value, vr, context.shift))
    if vr == "PN":
        return _mapped(element, lambda value: {"Alphabetic": _masked(_person_text(value), context)})
    if vr in _TEXT_VRS:
        return _mapped(element, lambda value: _masked(str(value), context))
    return dict(element)


def _shifted(value: str, vr: str, days: int) -> str | None:
    """A DA or DT value moved back by ``days`` (a DA of ACR-NEMA's YYYY.MM.DD form as
    YYYYMMDD); None for a value that is not a date."""
    if vr == "DA":
        value = value.replace(".", "")
    try:
        date = datetime.datetime.strptime(value[:8], "%Y%m%d").date()
    except ValueError:
        return None
    shifted = (date - datetime.timedelta(days=days)).strftime("%Y%m%d")
    return shifted if vr == "DA" else shifted + value[8:]


def _masked(text: str, context: _Context) -> str:
    for value in context.identifying:
        text = re.sub(re.escape(value), "*", text, flags=re.IGNORECASE)
    return text


def _identifying(model: Mapping[str, Any], actions: Mapping[str, str]) -> tuple[str, ...]:
    """The text values of the attributes the profile removes or replaces (not those it keeps or
    cleans), and each part of a person's name, longest first: what cleaned text must not hold."""
    found = set()
    for tag, element in model.items():
        if actions.get(tag, "K") in ("K", "C") or element.get("vr") in ("SQ", "UI"):
            continue
        for value in element.get("Value") or ():
            text = _person_text(value) if isinstance(value, dict) else str(value)
            found.update(part.strip() for part in re.split(r"[\^=\\]", text))
            found.add(text.strip())
    return tuple(sorted((t for t in found if len(t) >= _MASKED_LENGTH), key=len, reverse=True))


def _method(settings: Parsed) -> dict[str, Any]:
    """The attributes that record how the dataset was de-identified."""
    used = ["basic", *(name for name in _OPTION_HELP if settings[name])]
    if settings["keep_private"]:
        used.append("retain_safe_private")
    codes = [METHOD_CODES[name][1:] for name in used]
    temporal = (
        "MODIFIED"
        if settings["date_shift"]
        else "UNMODIFIED"
        if settings["retain_dates"]
        else "REMOVED"
    )
    return {
        "00120062": {"vr": "CS", "Value": ["YES"]},
        "00120063": {"vr": "LO", "Value": [f"dicomsql: {meaning}" for _, meaning in codes]},
        "00120064": {
            "vr": "SQ",
            "Value": [
                {
                    "00080100": {"vr": "SH", "Value": [code]},
                    "00080102": {"vr": "SH", "Value": ["DCM"]},
                    "00080104": {"vr": "LO", "Value": [meaning]},
                }
                for code, meaning in codes
            ],
        },
        "00280303": {"vr": "CS", "Value": [temporal]},
    }


def _person_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return str(
            value.get("Alphabetic") or value.get("Ideographic") or value.get("Phonetic") or ""
        )
    return "" if value is None else str(value)


def _first_text(element: Mapping[str, Any] | None) -> str | None:
    values = (element or {}).get("Value") or [None]
    return None if values[0] is None else _person_text(values[0])
