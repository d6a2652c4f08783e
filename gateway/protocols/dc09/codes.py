"""What a DC-09 message's content means for Trygg: SIA DC-03 codes and Contact ID events to alarm types.

The table is docs/protocols-dc09.md's. A code is keyed ``SIA:XX`` (two letters) or ``CID:NNN`` (three digits; the
qualifier says new event 1, restore 3, status 6). Each code belongs to a family; a restore cancels the open alarm
of its family (and zone), and one with nothing open to cancel is filed as its ``restored`` type when it has one
(mains, battery, link) and only logged otherwise. Test codes are supervision signals, not alarms. A code that is
well formed but not in the table is filed as a ``generic_alarm`` carrying its raw code; content that cannot be read
at all is refused (DUH). ``dc09_code_map`` (settings) adds codes or overrides them, e.g. a vendor's fall code.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum

from devices import AlarmType


class Kind(StrEnum):
    ALARM = "alarm"
    RESTORE = "restore"
    TEST = "test"  # a periodic or manual test: supervision, like a NULL link test


@dataclass(frozen=True, slots=True)
class Meaning:
    family: str
    alarm_type: AlarmType | None  # None: a test code
    priority: int | None = None  # None: the type's default
    restored: AlarmType | None = None  # what a restore with nothing open to cancel is filed as


@dataclass(frozen=True, slots=True)
class Event:
    """One event read from a message's content."""

    code: str  # SIA:FA, CID:110
    kind: Kind
    zone: str | None
    meaning: Meaning | None  # None: not in the table (filed as generic)

    @property
    def alarm_type(self) -> AlarmType:
        if self.meaning is None or self.meaning.alarm_type is None:
            return AlarmType.GENERIC_ALARM
        return self.meaning.alarm_type


def _m(
    family: str, alarm_type: AlarmType | None, priority: int | None = None, restored: AlarmType | None = None
) -> Meaning:
    return Meaning(family, alarm_type, priority, restored)


_MEDICAL = _m("medical", AlarmType.ASSISTANCE)
_EMERGENCY = _m("emergency", AlarmType.ASSISTANCE, 8)
_PANIC = _m("panic", AlarmType.ASSISTANCE, 8)
_FIRE = _m("fire", AlarmType.SMOKE)
_FALL = _m("fall", AlarmType.FALL)
_INACTIVITY = _m("inactivity", AlarmType.INACTIVITY)
_TAMPER = _m("tamper", AlarmType.TAMPER)
_AC = _m("ac", AlarmType.MAINS_LOST, restored=AlarmType.MAINS_RESTORED)
_BATTERY = _m("battery", AlarmType.LOW_BATTERY, restored=AlarmType.BATTERY_OK)
_LINK = _m("link", AlarmType.LINK_LOST, restored=AlarmType.LINK_RESTORED)
_TEST = _m("test", None)

# SIA DC-03: event code -> (meaning, is a restore)
SIA_CODES: dict[str, tuple[Meaning, bool]] = {
    "MA": (_MEDICAL, False), "MH": (_MEDICAL, True), "MR": (_MEDICAL, True),
    "QA": (_EMERGENCY, False), "QH": (_EMERGENCY, True), "QR": (_EMERGENCY, True),
    "PA": (_PANIC, False), "PH": (_PANIC, True), "PR": (_PANIC, True),
    "HA": (_PANIC, False), "HH": (_PANIC, True), "HR": (_PANIC, True),
    "FA": (_FIRE, False), "FH": (_FIRE, True), "FR": (_FIRE, True),
    "KA": (_FIRE, False), "KH": (_FIRE, True), "KR": (_FIRE, True),
    "TA": (_TAMPER, False), "TR": (_TAMPER, True), "TH": (_TAMPER, True),
    "AT": (_AC, False), "AR": (_AC, True),
    "YT": (_BATTERY, False), "YR": (_BATTERY, True), "XT": (_BATTERY, False), "XR": (_BATTERY, True),
    "YC": (_LINK, False), "YK": (_LINK, True),
    "RP": (_TEST, False), "RX": (_TEST, False), "RY": (_TEST, False),
}  # fmt: skip

# Contact ID: event code -> meaning (the qualifier says new event or restore)
CID_CODES: dict[str, Meaning] = {
    "100": _MEDICAL, "101": _EMERGENCY, "102": _INACTIVITY,
    "110": _FIRE, "111": _FIRE, "112": _FIRE, "114": _FIRE, "117": _FIRE,
    "120": _PANIC, "121": _PANIC, "122": _PANIC, "123": _PANIC,
    "137": _TAMPER, "144": _TAMPER, "145": _TAMPER, "383": _TAMPER,
    "301": _AC, "302": _BATTERY, "309": _BATTERY, "311": _BATTERY, "384": _BATTERY,
    "350": _LINK, "354": _LINK,
    "601": _TEST, "602": _TEST, "603": _TEST,
}  # fmt: skip

# Neither DC-03 nor Contact ID defines a fall event: units send a vendor code. These defaults are Trygg's choice;
# set ``dc09_code_map`` to what the units in service send.
DEFAULT_EXTRA_CODES: dict[str, str] = {"SIA:MF": "fall", "CID:105": "fall"}

_CID = re.compile(r"^(?P<q>[136])(?P<code>[0-9]{3})(?: ?(?P<area>[0-9A-Fa-f]{2}))?(?: ?(?P<zone>[0-9A-Fa-f]{3}))?$")
# DC-03 data: modifiers (lower case: ri area, id user, ti time, ...) then the event code (two upper-case letters)
# and its zone or unit; events separated by "/" (some diallers leave the "/" out); names between "^".
_SIA_MODIFIER = r"(?:(?:ri|id|pi|ai|ci|lf|da)[0-9]+|ti[0-9:]+)"
_SIA_NAME = re.compile(r"\^[^^]*\^")
_SIA_MODIFIERS_ONLY = re.compile(rf"^{_SIA_MODIFIER}+$")
_SIA_EVENT = re.compile(rf"^{_SIA_MODIFIER}*(?P<code>[A-Z]{{2}})(?P<zone>[0-9A-Za-z]{{0,8}})")


class Unsupported(ValueError):
    """The content cannot be read (DUH)."""


def _data(content: str) -> str:
    """The event data: after the ``#account|`` the content may start with."""
    return content.rsplit("|", 1)[-1].strip()


def read_event(token: str, content: str, extra: Mapping[str, str] | None = None) -> Event:
    """The (first) event of a SIA-DCS or ADM-CID message's content; raises :class:`Unsupported`."""
    data = _data(content)
    if token == "ADM-CID":
        match = _CID.match(data)
        if match is None:
            raise Unsupported("not a Contact ID event")
        code = match["code"]
        meaning = _lookup(f"CID:{code}", extra) or CID_CODES.get(code)
        kind = Kind.RESTORE if match["q"] == "3" else Kind.ALARM
        if meaning is not None and meaning.alarm_type is None:
            kind = Kind.TEST
        return Event(f"CID:{code}", kind, match["zone"], meaning)
    if token == "SIA-DCS":
        if data.startswith("A"):  # an ASCII text message without an event code: kept as a generic alarm
            return Event("SIA:A", Kind.ALARM, None, None)
        for i, part in enumerate(data.split("/")):
            if i == 0 and part[:1] in ("N", "O"):
                part = part[1:]  # new or old event
            part = _SIA_NAME.sub("", part)
            if not part or _SIA_MODIFIERS_ONLY.match(part):
                continue
            match = _SIA_EVENT.match(part)
            if match is None:
                raise Unsupported("not a SIA event")
            code = match["code"]
            looked_up = _lookup(f"SIA:{code}", extra)
            entry = SIA_CODES.get(code)
            meaning = looked_up or (entry[0] if entry else None)
            restore = entry[1] if entry and looked_up is None else False
            if meaning is not None and meaning.alarm_type is None:
                kind = Kind.TEST
            else:
                kind = Kind.RESTORE if restore else Kind.ALARM
            return Event(f"SIA:{code}", kind, match["zone"] or None, meaning)
        raise Unsupported("no SIA event in the content")
    raise Unsupported(f"no events in a {token} message")


def _lookup(code: str, extra: Mapping[str, str] | None) -> Meaning | None:
    name = (extra or {}).get(code)
    if name is None:
        return None
    if name == "test":
        return _TEST
    alarm_type = AlarmType(name)  # validated by the settings
    return Meaning(f"map:{code}", alarm_type)
