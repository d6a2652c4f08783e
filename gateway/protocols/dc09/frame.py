"""SIA DC-09 frames: parse what a unit sends, build what the receiver answers. Pure functions, no I/O.

A frame is ``<LF> CRC LLLL "ID" seq [Rrcvr] [Lline] #acct [content] [_HH:MM:SS,MM-DD-YYYY] <CR>``: CRC-16 (ARC,
polynomial 0xA001 reflected, init 0) and length (4 hex) are over everything from the first ``"`` to before
``<CR>``. ``"*SIA-DCS"``: the part after ``[`` is AES-CBC (zero IV) in hex, whose plaintext is random padding,
``|``, the content, ``]`` and the time stamp (docs/protocols-dc09.md). Parsing never raises: a bad frame is a
:class:`FrameError` that says which answer it gets (NAK for a bad CRC, length or time stamp; DUH for what is not
understood), and a reason code for the counter and the log.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

TOKENS = ("SIA-DCS", "ADM-CID", "NULL")
TIME_FORMAT = "%H:%M:%S,%m-%d-%Y"
KEY_BYTES = (16, 24, 32)

_HEADER = re.compile(
    rb'^"(?P<star>\*)?(?P<token>[A-Z0-9-]{1,16})"(?P<seq>[0-9]{4})'
    rb"(?:R(?P<receiver>[0-9A-Fa-f]{1,6}))?(?:L(?P<line>[0-9A-Fa-f]{1,6}))?#(?P<account>[0-9A-Fa-f]{3,16})\["
)
_TIMESTAMP = re.compile(r"_(\d{2}:\d{2}:\d{2},\d{2}-\d{2}-\d{4})$")


class Answer(StrEnum):
    ACK = "ACK"
    NAK = "NAK"
    DUH = "DUH"


@dataclass(frozen=True, slots=True)
class FrameError:
    """Why a frame is refused, and with which answer. ``header`` is set when the frame's header could be read (a
    DUH echoes its sequence number, receiver, line and account)."""

    answer: Answer
    code: str  # crc, length, format, token, decrypt, timestamp, ... (the counter's label)
    reason: str
    header: Header | None = None


@dataclass(frozen=True, slots=True)
class Header:
    token: str
    encrypted: bool
    seq: str
    receiver: str | None
    line: str | None
    account: str


@dataclass(frozen=True, slots=True)
class Frame:
    """A frame whose CRC and length are right; ``body`` is still encrypted when ``header.encrypted``."""

    header: Header
    body: str  # what follows ``[`` (plain: content ``]`` and the optional time stamp; encrypted: hex)


@dataclass(frozen=True, slots=True)
class Message:
    """A frame's content in clear: the data between ``[`` and ``]`` and the unit's time stamp (UTC), if any."""

    header: Header
    content: str
    extra: str  # further ``[...]`` blocks after the content (DC-09 extended data), kept raw
    timestamp: datetime | None


def _crc16_bitwise(byte: int) -> int:
    crc = byte
    for _ in range(8):
        crc = (crc >> 1) ^ 0xA001 if crc & 1 else crc >> 1
    return crc


# CRC-16/ARC a byte at a time from a 256-entry table: the same value as bit by bit, about 10 times faster in Python
# (it is over every frame received and every answer built; bit by bit it took 4.6 % of the gateway's GIL time at a
# saturated DC-09 load, docs/benchmarks.md).
_CRC16_TABLE = tuple(_crc16_bitwise(byte) for byte in range(256))


def crc16(data: bytes) -> int:
    crc = 0
    table = _CRC16_TABLE
    for byte in data:
        crc = (crc >> 8) ^ table[(crc ^ byte) & 0xFF]
    return crc


def parse_frame(raw: bytes, max_bytes: int) -> Frame | FrameError:
    """One frame (with or without its ``<LF>``/``<CR>``): CRC, length and header checked."""
    if len(raw) > max_bytes:
        return FrameError(Answer.NAK, "oversize", f"frame of {len(raw)} bytes (at most {max_bytes})")
    data = raw.strip(b"\r\n\x00 ")
    if len(data) < 8 + 12:
        return FrameError(Answer.NAK, "format", "frame too short")
    try:
        crc = int(data[0:4], 16)
        length = int(data[4:8], 16)
    except ValueError:
        return FrameError(Answer.NAK, "format", "CRC or length is not hexadecimal")
    body = data[8:]
    if len(body) != length:
        return FrameError(Answer.NAK, "length", f"length field says {length}, frame has {len(body)}")
    if crc16(body) != crc:
        return FrameError(Answer.NAK, "crc", "CRC mismatch")
    match = _HEADER.match(body)
    if match is None:
        return FrameError(Answer.DUH, "format", "header not understood")
    try:
        text = body.decode("ascii")
    except UnicodeDecodeError:
        return FrameError(Answer.DUH, "format", "frame is not ASCII")
    header = Header(
        token=match["token"].decode(),
        encrypted=match["star"] is not None,
        seq=match["seq"].decode(),
        receiver=match["receiver"].decode().upper() if match["receiver"] else None,
        line=match["line"].decode().upper() if match["line"] else None,
        account=match["account"].decode().upper(),
    )
    if header.token not in TOKENS:
        return FrameError(Answer.DUH, "token", f"unsupported token {header.token[:16]!r}", header)
    return Frame(header, text[match.end() :])


def open_frame(frame: Frame, key: bytes | None) -> Message | FrameError:
    """The frame's content in clear: decrypted with the account's key when encrypted."""
    header = frame.header
    body = frame.body
    if header.encrypted:
        if key is None:
            return FrameError(
                Answer.DUH, "not_encrypted_account", "encrypted frame for an account without a key", header
            )
        try:
            cipher = bytes.fromhex(body)
        except ValueError:
            return FrameError(Answer.DUH, "decrypt", "encrypted content is not hexadecimal", header)
        if not cipher or len(cipher) % 16:
            return FrameError(Answer.DUH, "decrypt", "encrypted content is not whole AES blocks", header)
        decryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).decryptor()
        plain = decryptor.update(cipher) + decryptor.finalize()
        bar = plain.find(b"|")
        try:
            body = plain[bar + 1 :].decode("ascii") if bar >= 0 else ""
        except UnicodeDecodeError:
            body = ""
        if bar < 0 or not body.isprintable():
            return FrameError(Answer.DUH, "decrypt", "content does not decrypt with the account's key", header)
    elif key is not None:
        return FrameError(Answer.DUH, "encryption_required", "plain frame for an account that encrypts", header)
    close = body.rfind("]")
    if close < 0:
        return FrameError(Answer.DUH, "format", "content has no closing bracket", header)
    rest = body[close + 1 :]
    timestamp = None
    stamp = _TIMESTAMP.search(rest)
    if stamp is not None:
        try:
            timestamp = datetime.strptime(stamp[1], TIME_FORMAT).replace(tzinfo=UTC)
        except ValueError:
            return FrameError(Answer.NAK, "timestamp", "time stamp is not a date", header)
        rest = rest[: stamp.start()]
    elif rest.strip():
        return FrameError(Answer.DUH, "format", "unexpected text after the content", header)
    if header.encrypted and timestamp is None:
        return FrameError(Answer.NAK, "timestamp", "encrypted frame without a time stamp", header)
    # ``body`` up to ``close``: the content and any further ``[...]`` blocks of extended data
    first = body.find("]")
    content, extra = body[:first], body[first + 1 : close + 1]
    return Message(header, content, extra, timestamp)


def check_window(timestamp: datetime, now: datetime, behind_s: float, ahead_s: float) -> FrameError | None:
    if timestamp < now - timedelta(seconds=behind_s):
        return FrameError(Answer.NAK, "timestamp", "time stamp too old")
    if timestamp > now + timedelta(seconds=ahead_s):
        return FrameError(Answer.NAK, "timestamp", "time stamp too far ahead")
    return None


def _wrap(body: str) -> bytes:
    data = body.encode("ascii")
    return b"\n" + f"{crc16(data):04X}{len(data):04X}".encode() + data + b"\r"


def _encrypt(plain: str, key: bytes) -> str:
    """``plain`` behind random padding and ``|``, AES-CBC with a zero IV, as upper-case hex."""
    pad_len = 16 - (len(plain) + 1) % 16
    alphabet = [c for c in range(0x21, 0x7E) if chr(c) not in "[]|"]
    pad = "".join(chr(alphabet[b % len(alphabet)]) for b in os.urandom(pad_len))
    encryptor = Cipher(algorithms.AES(key), modes.CBC(bytes(16))).encryptor()
    data = (pad + "|" + plain).encode("ascii")
    return (encryptor.update(data) + encryptor.finalize()).hex().upper()


def stamp(now: datetime) -> str:
    return "_" + now.astimezone(UTC).strftime(TIME_FORMAT)


def build_answer(answer: Answer, header: Header | None, now: datetime, key: bytes | None = None) -> bytes:
    """ACK and DUH echo the frame's sequence number, receiver, line and account; an ACK to an encrypted frame is
    encrypted and carries the receiver's time stamp. NAK carries the receiver's time stamp (the unit corrects its
    clock from it), in clear, with sequence number 0000 and account 0 as DC-09 lays down."""
    if answer is Answer.NAK or header is None:
        return _wrap(f'"{answer.value}"0000R0L0A0[]{stamp(now)}')
    ids = (
        f"{header.seq}"
        + (f"R{header.receiver}" if header.receiver else "")
        + (f"L{header.line}" if header.line else "")
    )
    ids += f"#{header.account}"
    if answer is Answer.ACK and header.encrypted and key is not None:
        return _wrap(f'"*{answer.value}"{ids}[' + _encrypt("]" + stamp(now), key))
    return _wrap(f'"{answer.value}"{ids}[]')


def build_frame(
    token: str,
    seq: int,
    account: str,
    content: str,
    *,
    receiver: str | None = None,
    line: str | None = None,
    key: bytes | None = None,
    now: datetime | None = None,
) -> bytes:
    """A frame as a unit sends it (tests and benchmarks; the peers under test are third-party diallers)."""
    ids = f"{seq:04d}" + (f"R{receiver}" if receiver else "") + (f"L{line}" if line else "") + f"#{account}["
    when = stamp(now or datetime.now(UTC))
    if key is None:
        return _wrap(f'"{token}"{ids}{content}]' + (when if now is not None else ""))
    return _wrap(f'"*{token}"{ids}' + _encrypt(f"{content}]{when}", key))
