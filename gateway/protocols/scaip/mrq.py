"""The SCAIP application messages: the unit's request ``<mrq>`` in, the receiver's response ``<mrs>`` out.

Parsed with ``defusedxml`` (no entity expansion, no DTD, no external references) after a size check; every element
of ``<mrq>`` is plain text with a form (docs/protocols-scaip.md). :func:`parse_mrq` never raises: it returns an
:class:`Mrq` or a :class:`Refusal` carrying the ``snu`` result code to answer with (1 too long, 2 invalid format,
3 wrong data content, 7 mandatory tag missing) and, when it could be read, the ``ref`` to answer it under.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from xml.etree.ElementTree import Element, ParseError, SubElement, tostring

import defusedxml.ElementTree as safe_et
from defusedxml import DefusedXmlException

CONTENT_TYPE = "application/scaip+xml"
VERSION = "01.00"


class Snu(IntEnum):
    """``<snu>``: the result the receiver answers a request with."""

    OK = 0
    TOO_LONG = 1
    INVALID_FORMAT = 2
    WRONG_DATA = 3
    HOLD = 4  # still working on it: resend in a while
    NOT_TREATED = 5  # take your next action (another receiver)
    BUSY = 6
    MISSING_TAG = 7


class MessageType(StrEnum):
    ALARM = "ME"
    RESET = "RE"
    INFO = "IN"
    HEARTBEAT = "PI"


# tag -> the form its text must have (SS 91100's field sizes, docs/protocols-scaip.md)
_FORMS: dict[str, re.Pattern[str]] = {
    tag: re.compile(pattern, re.DOTALL)
    for tag, pattern in {
        "ref": r"[0-9A-Za-z]{1,16}",
        "ver": r"[0-9]{2}\.[0-9]{2}",
        "sco": r"[0-9]",
        "cha": r"[0-9]",
        "mty": r"ME|RE|IN|PI",
        "hbo": r"[0-3]",
        "cid": r"[0-9]{1,16}",
        "dty": r"[0-9]{1,4}",
        "did": r"[^\x00-\x1f]{1,8}",
        "dco": r"[0-9]{1,3}",
        "dte": r"[^\x00-\x1f]{0,32}",
        "crd": r"[^\x00-\x1f]{0,256}",
        "stc": r"[0-9]{1,4}",
        "stt": r"[^\x00-\x1f]{0,32}",
        "pri": r"[0-9]",
        "lco": r"[0-9]{1,3}",
        "lva": r"[^\x00-\x1f]{1,2}",
        "lte": r"[^\x00-\x1f]{0,32}",
        "ico": r"[0-9]{1,4}",
        "ite": r"[^\x00-\x1f]{0,128}",
        "ame": r"[01]",
    }.items()
}
_GEO_FORMS: dict[str, re.Pattern[str]] = {
    "geo": re.compile(r"-?[0-9]{1,2}(\.[0-9]{1,10})?,-?[0-9]{1,3}(\.[0-9]{1,10})?"),
    "tim": re.compile(r"[0-9TZ:+.\- ]{1,32}"),
    "gga": re.compile(r"[\x20-\x7e]{1,128}"),
}
REQUIRED = ("ref", "mty", "cid", "dty")
_REF_PEEK = re.compile(rb"<ref>\s*([0-9A-Za-z]{1,16})\s*</ref>")


@dataclass(frozen=True, slots=True)
class Refusal:
    snu: Snu
    reason: str  # English, for logs and ``<ste>``; never the message's own text
    ref: str | None = None


@dataclass(frozen=True, slots=True)
class Mrq:
    """A unit's request, its fields as sent (text), validated against their forms."""

    ref: str
    mty: MessageType
    cid: str
    dty: str
    fields: dict[str, str] = field(default_factory=dict)  # every other simple element that was sent
    geo: dict[str, str] = field(default_factory=dict)  # <lge>: geo, tim, gga

    def get(self, tag: str) -> str | None:
        return self.fields.get(tag)

    @property
    def did(self) -> str | None:
        return self.fields.get("did")

    @property
    def crd(self) -> str | None:
        return self.fields.get("crd")

    @property
    def stc(self) -> int | None:
        value = self.fields.get("stc")
        return int(value) if value is not None else None

    @property
    def pri(self) -> int | None:
        value = self.fields.get("pri")
        return int(value) if value is not None else None


def peek_ref(body: bytes) -> str | None:
    """The ``ref`` of a body too long (or too broken) to parse, to answer it under; None when none is seen."""
    found = _REF_PEEK.search(body[:4096])
    return found.group(1).decode("ascii") if found else None


def parse_mrq(body: bytes, max_bytes: int) -> Mrq | Refusal:
    """Parse and validate an ``<mrq>``; never raises."""
    if len(body) > max_bytes:
        return Refusal(Snu.TOO_LONG, f"request of {len(body)} bytes is over {max_bytes}", peek_ref(body))
    try:
        root = safe_et.fromstring(body, forbid_dtd=True)
    except (ParseError, DefusedXmlException, ValueError, UnicodeError) as exc:
        return Refusal(Snu.INVALID_FORMAT, f"not well-formed XML ({type(exc).__name__})", peek_ref(body))
    except Exception as exc:  # defensive: a parser bug must not take the receiver down
        return Refusal(Snu.INVALID_FORMAT, f"unreadable XML ({type(exc).__name__})", peek_ref(body))
    if root.tag != "mrq":
        return Refusal(Snu.INVALID_FORMAT, "root element is not <mrq>", peek_ref(body))
    fields: dict[str, str] = {}
    geo: dict[str, str] = {}
    ref = _text(root.find("ref"))
    ref = ref if ref is not None and _FORMS["ref"].fullmatch(ref) else None
    for child in root:
        tag = child.tag if isinstance(child.tag, str) else ""
        if tag in fields or (tag == "lge" and geo):
            return Refusal(Snu.INVALID_FORMAT, f"<{tag}> appears twice", ref)
        if tag == "lge":
            for part in child:
                form = _GEO_FORMS.get(part.tag if isinstance(part.tag, str) else "")
                text = _text(part) or ""
                if form is None or len(part) or not form.fullmatch(text):
                    return Refusal(Snu.WRONG_DATA, "<lge> has an element of the wrong form", ref)
                geo[str(part.tag)] = text
            if not geo:
                return Refusal(Snu.WRONG_DATA, "<lge> is empty", ref)
            continue
        form = _FORMS.get(tag)
        if form is None:
            continue  # an element of a later version: ignored, as the unit's extensions are
        if len(child):
            return Refusal(Snu.INVALID_FORMAT, f"<{tag}> must hold text only", ref)
        text = _text(child) or ""
        if not form.fullmatch(text):
            return Refusal(Snu.WRONG_DATA, f"<{tag}> is not of its form", ref)
        fields[tag] = text
    missing = [tag for tag in REQUIRED if tag not in fields]
    if missing:
        return Refusal(Snu.MISSING_TAG, f"mandatory <{missing[0]}> is missing", ref)
    return Mrq(
        ref=fields.pop("ref"),
        mty=MessageType(fields.pop("mty")),
        cid=fields.pop("cid"),
        dty=fields.pop("dty"),
        fields=fields,
        geo=geo,
    )


def _text(element: Element | None) -> str | None:
    if element is None:
        return None
    return (element.text or "").strip()


@dataclass(frozen=True, slots=True)
class Mrs:
    """The receiver's answer to one request (same ``ref``)."""

    ref: str | None
    snu: Snu
    ste: str | None = None  # status text, English, up to 128
    mre: int | None = None  # voice mode: 0 none, 1 duplex, 2 microphone only, 3 speaker only
    hbi: int | None = None  # heartbeat interval code 0-4 (the unit's configuration)

    def to_xml(self) -> bytes:
        root = Element("mrs")
        if self.ref is not None:
            SubElement(root, "ref").text = self.ref
        SubElement(root, "snu").text = str(int(self.snu))
        if self.ste:
            SubElement(root, "ste").text = self.ste[:128]
        SubElement(root, "cve").text = VERSION
        if self.mre is not None:
            SubElement(root, "mre").text = str(self.mre)
        if self.hbi is not None:
            SubElement(root, "hbi").text = str(self.hbi)
        body: bytes = tostring(root, encoding="utf-8", xml_declaration=False)
        return b'<?xml version="1.0" encoding="UTF-8"?>' + body
