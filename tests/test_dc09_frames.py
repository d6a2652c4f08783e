"""DC-09 frames without I/O: CRC, the three key sizes, the time window, the codes, and garbage that never raises."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from gateway.protocols.dc09.codes import Kind, Unsupported, read_event
from gateway.protocols.dc09.frame import (
    Answer,
    Frame,
    FrameError,
    Message,
    build_answer,
    build_frame,
    check_window,
    crc16,
    open_frame,
    parse_frame,
)

NOW = datetime(2026, 11, 30, 1, 0, 0, tzinfo=UTC)


def test_crc_is_crc16_arc() -> None:
    assert crc16(b"123456789") == 0xBB3D  # the check value of CRC-16/ARC
    assert crc16(b"") == 0


def _crc16_arc_bit_by_bit(data: bytes) -> int:
    crc = 0
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


@settings(max_examples=300)
@given(st.binary(max_size=600))
def test_table_crc_equals_the_bit_by_bit_definition(data: bytes) -> None:
    assert crc16(data) == _crc16_arc_bit_by_bit(data)


@pytest.mark.parametrize("bits", [128, 192, 256])
def test_every_key_size_round_trips_and_a_wrong_key_is_refused(bits: int) -> None:
    key = bytes(range(bits // 8))
    raw = build_frame("SIA-DCS", 12, "ABC123", "#ABC123|Nri1/FA501", receiver="1F", line="2", key=key, now=NOW)
    frame = parse_frame(raw, 1024)
    assert isinstance(frame, Frame) and frame.header.encrypted and frame.header.receiver == "1F"
    message = open_frame(frame, key)
    assert isinstance(message, Message)
    assert message.content == "#ABC123|Nri1/FA501" and message.timestamp == NOW
    wrong = open_frame(frame, bytes(reversed(key)))
    # a wrong key gives random bytes: unreadable ("decrypt") or, now and then, readable text that is no DC-09
    # content ("format"); either way the unit is told DUH and nothing is stored
    assert isinstance(wrong, FrameError) and wrong.answer is Answer.DUH and wrong.code in ("decrypt", "format")
    assert isinstance(open_frame(frame, None), FrameError)


def test_time_window_is_40_s_behind_and_20_s_ahead() -> None:
    assert check_window(NOW - timedelta(seconds=39), NOW, 40, 20) is None
    assert check_window(NOW + timedelta(seconds=19), NOW, 40, 20) is None
    behind = check_window(NOW - timedelta(seconds=41), NOW, 40, 20)
    ahead = check_window(NOW + timedelta(seconds=21), NOW, 40, 20)
    assert behind is not None and behind.answer is Answer.NAK
    assert ahead is not None and ahead.answer is Answer.NAK


def test_bad_crc_length_and_size_are_nak() -> None:
    raw = build_frame("ADM-CID", 1, "1234", "#1234|1100 01 003", now=NOW)
    assert isinstance(parse_frame(raw, 1024), Frame)
    flipped = raw[:10] + (b"X" if raw[10:11] != b"X" else b"Y") + raw[11:]
    for bad, code in ((flipped, "crc"), (raw[:-3] + b"\r", "length"), (raw, "oversize")):
        result = parse_frame(bad, 1024 if code != "oversize" else 20)
        assert isinstance(result, FrameError) and result.answer is Answer.NAK and result.code == code


def test_answers_echo_the_header_and_nak_carries_the_time() -> None:
    frame = parse_frame(build_frame("NULL", 0, "1234", "", receiver="9", now=NOW), 1024)
    assert isinstance(frame, Frame)
    assert build_answer(Answer.ACK, frame.header, NOW).endswith(b'"ACK"0000R9#1234[]\r')
    assert build_answer(Answer.NAK, frame.header, NOW).endswith(b'"NAK"0000R0L0A0[]_01:00:00,11-30-2026\r')


@pytest.mark.parametrize(
    ("token", "content", "code", "kind", "zone"),
    [
        ("SIA-DCS", "#1234|Nri1/FA501", "SIA:FA", Kind.ALARM, "501"),
        ("SIA-DCS", "#1234|Nri1MA3", "SIA:MA", Kind.ALARM, "3"),
        ("SIA-DCS", "#1234|NMH3", "SIA:MH", Kind.RESTORE, "3"),
        ("SIA-DCS", "#1234|NRP", "SIA:RP", Kind.TEST, None),
        ("SIA-DCS", "Nid12ti10:00MF2^Hall^", "SIA:MF", Kind.ALARM, "2"),
        ("ADM-CID", "#1234|1100 00 003", "CID:100", Kind.ALARM, "003"),
        ("ADM-CID", "#1234|3301 00 001", "CID:301", Kind.RESTORE, "001"),
        ("ADM-CID", "#1234|1602 00 000", "CID:602", Kind.TEST, "000"),
        ("ADM-CID", "#1234|1999 00 001", "CID:999", Kind.ALARM, "001"),
    ],
)
def test_codes(token: str, content: str, code: str, kind: Kind, zone: str | None) -> None:
    event = read_event(token, content, {"SIA:MF": "fall"})
    assert (event.code, event.kind, event.zone) == (code, kind, zone)


def test_mapping_and_generic() -> None:
    assert read_event("SIA-DCS", "NMF1", {"SIA:MF": "fall"}).alarm_type == "fall"
    assert read_event("SIA-DCS", "NZZ1").alarm_type == "generic_alarm"
    assert read_event("ADM-CID", "1110 00 001").alarm_type == "smoke"
    with pytest.raises(Unsupported):
        read_event("ADM-CID", "#1234|hello")
    with pytest.raises(Unsupported):
        read_event("SIA-DCS", "#1234|N/ri1")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_garbage_never_raises(data: bytes) -> None:
    for raw in (data, b"\n" + data + b"\r"):
        result = parse_frame(raw, 1024)
        if isinstance(result, Frame):
            opened = open_frame(result, bytes(16))
            if isinstance(opened, Message):
                try:
                    read_event(result.header.token, opened.content)
                except Unsupported:
                    pass


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=126), max_size=60))
def test_any_printable_content_in_a_valid_frame_never_raises(content: str) -> None:
    raw = build_frame("SIA-DCS", 1, "1234", content.replace("]", ""), key=bytes(16), now=NOW)
    result = parse_frame(raw, 4096)
    assert isinstance(result, Frame)
    opened = open_frame(result, bytes(16))
    if isinstance(opened, Message):
        try:
            read_event("SIA-DCS", opened.content)
        except Unsupported:
            pass
