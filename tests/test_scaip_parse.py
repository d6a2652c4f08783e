"""SCAIP's parsers on hostile input, without a network: SIP framing and parsing (sip.py) and <mrq> (mrq.py) never
raise, and refuse with the right status or snu."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from devices import AlarmType
from gateway.protocols.scaip import sip
from gateway.protocols.scaip.codes import alarm_type
from gateway.protocols.scaip.mrq import MessageType, Mrq, Mrs, Refusal, Snu, parse_mrq, peek_ref

GOOD = (
    b'<?xml version="1.0"?><mrq><ref>a1</ref><ver>01.00</ver><mty>ME</mty><cid>4670001</cid><dty>0005</dty>'
    b"<stc>0009</stc><lco>011</lco><lte>bathroom</lte><lge><geo>59.33,18.06</geo></lge></mrq>"
)


def request(body: bytes = GOOD, **headers: str) -> bytes:
    base = {
        "Via": "SIP/2.0/UDP 127.0.0.1:5070;branch=z9hG4bK1",
        "From": "<sip:4670001@127.0.0.1:5070>;tag=1",
        "To": "<sip:trygg@127.0.0.1>",
        "Call-ID": "c1",
        "CSeq": "1 MESSAGE",
        "Content-Type": "application/scaip+xml",
        "Content-Length": str(len(body)),
    }
    base.update(headers)
    head = "MESSAGE sip:trygg@127.0.0.1 SIP/2.0\r\n" + "".join(f"{k}: {v}\r\n" for k, v in base.items() if v)
    return head.encode() + b"\r\n" + body


def test_a_good_request_parses() -> None:
    message = sip.parse_request(request(), 8192)
    assert not isinstance(message, sip.SipError)
    mrq = parse_mrq(message.body, 2048)
    assert isinstance(mrq, Mrq)
    assert (mrq.ref, mrq.mty, mrq.cid, mrq.dty, mrq.stc) == ("a1", MessageType.ALARM, "4670001", "0005", 9)
    assert mrq.geo == {"geo": "59.33,18.06"} and mrq.get("lte") == "bathroom"


@pytest.mark.parametrize(
    ("data", "status"),
    [
        (b"garbage", 400),
        (b"\r\n\r\n", 400),
        (b"MESSAGE sip:x SIP/2.0\r\nVia: nonsense\r\n\r\n", 400),
        (request(Via=""), 400),
        (request(CSeq="x MESSAGE"), 400),
        (request(**{"Content-Length": "9999"}), 400),
        (b"\xff\xfe\x00 SIP/2.0\r\n\r\n", 400),
        (request(b"x" * 9000), 413),
    ],
)
def test_bad_sip_is_refused_with_its_status(data: bytes, status: int) -> None:
    got = sip.parse_request(data, 8192)
    assert isinstance(got, sip.SipError) and got.status == status


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_sip_parsing_never_raises(data: bytes) -> None:
    sip.parse_request(data, 8192)
    sip.parse_request(request() + data, 8192)
    sip.salvage_response(data, 400)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_tcp_framing_never_raises_but_too_large(data: bytes) -> None:
    buffer = bytearray(data)
    try:
        while sip.next_frame(buffer, 512) is not None:
            pass
    except sip.FrameTooLarge:
        pass


def test_tcp_framing_cuts_messages_by_content_length() -> None:
    buffer = bytearray(b"\r\n" + request() + request()[:50])
    assert sip.next_frame(buffer, 8192) == request()
    assert sip.next_frame(buffer, 8192) is None  # the second is not whole yet
    buffer += request()[50:]
    assert sip.next_frame(buffer, 8192) == request() and not buffer
    with pytest.raises(sip.FrameTooLarge):
        sip.next_frame(bytearray(b"A" * 9000), 8192)


@pytest.mark.parametrize(
    ("body", "snu"),
    [
        (GOOD.replace(b"</mrq>", b""), Snu.INVALID_FORMAT),
        (b"<mrs><ref>a</ref></mrs>", Snu.INVALID_FORMAT),
        (GOOD.replace(b"<mty>ME</mty>", b""), Snu.MISSING_TAG),
        (GOOD.replace(b"<cid>4670001</cid>", b"<cid>46A</cid>"), Snu.WRONG_DATA),
        (GOOD.replace(b"<ref>a1</ref>", b"<ref>a-1</ref>"), Snu.WRONG_DATA),
        (GOOD.replace(b"<mty>ME</mty>", b"<mty>ME</mty><mty>RE</mty>"), Snu.INVALID_FORMAT),
        (GOOD.replace(b"<stc>0009</stc>", b"<stc><b>1</b></stc>"), Snu.INVALID_FORMAT),
        (GOOD.replace(b"59.33,18.06", b"north"), Snu.WRONG_DATA),
        (GOOD.replace(b"<lte>bathroom</lte>", b"<lte>" + b"x" * 33 + b"</lte>"), Snu.WRONG_DATA),
        (GOOD[:-6] + b"<ite>" + b"x" * 3000 + b"</ite></mrq>", Snu.TOO_LONG),
        # an entity bomb and an external entity: defusedxml refuses the DTD outright
        (
            b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY a "aaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><mrq>&b;</mrq>',
            Snu.INVALID_FORMAT,
        ),
        (
            b'<?xml version="1.0"?><!DOCTYPE m [<!ENTITY x SYSTEM "file:///etc/passwd">]><mrq><ref>&x;</ref></mrq>',
            Snu.INVALID_FORMAT,
        ),
        (b"\xff\xfe<mrq/>", Snu.INVALID_FORMAT),
    ],
)
def test_bad_mrq_is_refused_with_its_snu(body: bytes, snu: Snu) -> None:
    got = parse_mrq(body, 2048)
    assert isinstance(got, Refusal) and got.snu is snu, got


def test_refusals_keep_the_ref_when_it_can_be_read() -> None:
    got = parse_mrq(GOOD.replace(b"<mty>ME</mty>", b""), 2048)
    assert isinstance(got, Refusal) and got.ref == "a1"
    assert peek_ref(b"<mrq><ref>Zz9</ref>" + b"x" * 5000) == "Zz9"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=800) | st.text(max_size=400).map(lambda t: f"<mrq>{t}</mrq>".encode()))
def test_mrq_parsing_never_raises(body: bytes) -> None:
    assert isinstance(parse_mrq(body, 2048), Mrq | Refusal)


def test_mrs_carries_ref_snu_and_configuration() -> None:
    xml = Mrs("a1", Snu.OK, "stored", mre=1, hbi=2).to_xml()
    assert b"<mrs><ref>a1</ref><snu>0</snu><ste>stored</ste><cve>01.00</cve><mre>1</mre><hbi>2</hbi></mrs>" in xml


@pytest.mark.parametrize(
    ("stc", "dty", "expected", "mapped"),
    [
        (10, 5, AlarmType.ASSISTANCE, True),  # a person pressed the fall detector's button
        (9, 5, AlarmType.FALL, True),
        (None, 23, AlarmType.SMOKE, True),
        (16, 3, AlarmType.LOW_BATTERY, True),
        (85, 41, AlarmType.MAINS_LOST, True),
        (113, 2, AlarmType.LINK_RESTORED, True),
        (102, 2, AlarmType.TEST_TRANSMISSION, True),
        (9, 21, AlarmType.GENERIC_ALARM, False),  # a gas detector: not mapped, never dropped
        (9999, 3, AlarmType.GENERIC_ALARM, False),
    ],
)
def test_status_codes_map_to_alarm_types(stc: int | None, dty: int, expected: AlarmType, mapped: bool) -> None:
    assert alarm_type(stc, dty) == (expected, mapped)
