"""Just enough SIP for SCAIP (RFC 3261 framing, RFC 3428 MESSAGE): parse a request, answer it, make a MESSAGE.

Parsing is the maintained ``sipmessage`` package's (docs/protocols-scaip.md says which others were weighed); this
module adds what it leaves to its user: framing on a TCP stream (``Content-Length``), size limits, the headers a
request must carry, and a never-raising entry point. Every refusal is a :class:`SipError` with the status code to
answer (400, 413, ...): the caller answers, logs and counts it.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass

from sipmessage import Message, Request, Response

MANDATORY = ("Via", "From", "To", "Call-ID", "CSeq")
_HEADER_END = b"\r\n\r\n"
_LENGTH = re.compile(rb"^(?:content-length|l)[ \t]*:[ \t]*([0-9]{1,9})[ \t]*$", re.IGNORECASE | re.MULTILINE)
_COPY = re.compile(rb"^(via|v|from|f|to|t|call-id|i|cseq)[ \t]*:[ \t]*([^\r\n]{0,512})$", re.IGNORECASE | re.MULTILINE)
_CANONICAL = {"v": "Via", "f": "From", "t": "To", "i": "Call-ID"}
PHRASES = {
    200: "OK",
    400: "Bad Request",
    405: "Method Not Allowed",
    413: "Request Entity Too Large",
    415: "Unsupported Media Type",
    500: "Server Internal Error",
}


@dataclass(frozen=True, slots=True)
class SipError:
    """A message that cannot be taken: the status to answer, and why (English; never the message's text)."""

    status: int
    reason: str
    code: str  # for the rejection counter: malformed, oversize, not_a_request, ...


class FrameTooLarge(Exception):
    """A TCP stream that sends more than one message may hold before its header ends or body is complete."""


def next_frame(buffer: bytearray, max_bytes: int) -> bytes | None:
    """Take one whole message off a TCP stream's buffer, or None until more has come.

    Raises :class:`FrameTooLarge` when the message cannot fit ``max_bytes`` (no header end within it, or a
    ``Content-Length`` that takes it over); the stream is closed then, as its framing can no longer be trusted.
    Keep-alive CRLFs between messages (RFC 5626) are skipped."""
    while buffer[:2] == b"\r\n":
        del buffer[:2]
    end = buffer.find(_HEADER_END)
    if end < 0:
        if len(buffer) > max_bytes:
            raise FrameTooLarge(f"no end of headers within {max_bytes} bytes")
        return None
    header = bytes(buffer[:end])
    found = _LENGTH.search(header)
    length = int(found.group(1)) if found else 0  # RFC 3261 18.3: a stream message must say; none counts as 0
    total = end + len(_HEADER_END) + length
    if total > max_bytes:
        raise FrameTooLarge(f"message of {total} bytes is over {max_bytes}")
    if len(buffer) < total:
        return None
    frame = bytes(buffer[:total])
    del buffer[:total]
    return frame


def parse_request(data: bytes, max_bytes: int) -> Request | Response | SipError:
    """Parse one message (a datagram, or a frame from :func:`next_frame`); never raises."""
    if len(data) > max_bytes:
        return SipError(413, f"message of {len(data)} bytes is over {max_bytes}", "oversize")
    if _HEADER_END not in data:
        return SipError(400, "no end of headers", "malformed")
    try:
        message = Message.parse(data)
        for header in MANDATORY:
            if message.headers.get(header) is None:
                return SipError(400, f"missing {header} header", "malformed")
        message.cseq  # noqa: B018 (parsed here so that a bad CSeq is a 400, not an error later)
        message.via  # noqa: B018
        message.from_address  # noqa: B018
        length = message.content_length
    except Exception as exc:  # sipmessage raises ValueError, and an odd input may raise more: all are a 400
        return SipError(400, f"malformed SIP ({type(exc).__name__})", "malformed")
    if length is not None:
        if length < 0 or length > len(message.body):
            return SipError(400, "Content-Length is longer than the body", "malformed")
        message.body = message.body[:length]  # a datagram may carry padding after the body
    return message


def response(request: Request, status: int, *, body: bytes = b"", content_type: str | None = None) -> bytes:
    """A response to ``request``: its Via, From, To (with our tag), Call-ID and CSeq copied (RFC 3261 8.2.6)."""
    reply = Response(status, PHRASES.get(status, "Error"), body)
    for header in ("Via", "From", "To", "Call-ID", "CSeq"):
        for value in request.headers.getlist(header):
            reply.headers.add(header, value)
    _tag_to(reply)
    return _finish(reply, body, content_type)


def salvage_response(data: bytes, status: int) -> bytes:
    """A response to a message that did not parse, copying what headers could be read from its raw bytes."""
    head = data.split(_HEADER_END, 1)[0][:8192]
    lines = [f"SIP/2.0 {status} {PHRASES.get(status, 'Error')}"]
    for name, value in _COPY.findall(head):
        key = name.decode("ascii").lower()
        text = value.decode("utf-8", "replace").strip()
        lines.append(f"{_CANONICAL.get(key, {'cseq': 'CSeq', 'call-id': 'Call-ID'}.get(key, key.title()))}: {text}")
    lines.append("Content-Length: 0")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8", "replace")


def message_request(
    target: str,
    from_uri: str,
    *,
    to: str,
    call_id: str,
    transport: str,
    local: tuple[str, int],
    body: bytes,
    content_type: str,
) -> tuple[bytes, str]:
    """A MESSAGE request (RFC 3428) to ``target`` in the conversation ``call_id`` (the unit's request's: the
    answer belongs to it); ``to`` is the unit's From header. Returns its bytes and its CSeq header value."""
    host, port = local
    cseq = f"{secrets.randbelow(2**31 - 1) + 1} MESSAGE"
    lines = [
        f"MESSAGE {target} SIP/2.0",
        f"Via: SIP/2.0/{transport.upper()} {host}:{port};branch=z9hG4bK{secrets.token_hex(8)};rport",
        "Max-Forwards: 70",
        f"From: <{from_uri}>;tag={secrets.token_hex(6)}",
        f"To: {to}",
        f"Call-ID: {call_id}",
        f"CSeq: {cseq}",
        f"Content-Type: {content_type}",
        f"Content-Length: {len(body)}",
    ]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("utf-8") + body, cseq


def _tag_to(reply: Response) -> None:
    to = reply.headers.get("To")
    if to is not None and ";tag=" not in to.replace(" ", "").lower():
        reply.headers.set("To", f"{to};tag={secrets.token_hex(6)}")


def _finish(reply: Response, body: bytes, content_type: str | None) -> bytes:
    if content_type is not None:
        reply.headers.set("Content-Type", content_type)
    reply.headers.set("Content-Length", str(len(body)))
    return bytes(reply)
