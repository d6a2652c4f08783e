"""Turns raw device payloads into contract models, or a rejection with a reason. Never raises.

Whatever a device sends (deep nesting, huge numbers, dates that overflow, invalid UTF-8, duplicate keys, ...)
ends as a model or a :class:`Rejection`; ``tests/test_parser_fuzz.py`` fuzzes every parser here to keep it so.
Beyond JSON's grammar the gateway asks what I-JSON (RFC 7493) asks: no duplicate keys, no non-finite numbers,
integers within 64 bits, and nesting at most ``MAX_DEPTH`` deep.
"""

import json
import math
import re
from dataclasses import dataclass
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from devices.messages import MAX_PAYLOAD_BYTES, AlarmCancel, AlarmMessage, Heartbeat
from devices.types import DEVICE_ALARM_TYPES, DeviceStatus

_ALARM_ID_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
MAX_DEPTH = 16  # the contract's own payloads nest 2 deep (an alarm's location)
_INT_LIMIT = 2**63

M = TypeVar("M", bound=BaseModel)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why a payload was refused. ``alarm_id`` is set when one could be read, so the device can be told."""

    reason: str
    code: str
    alarm_id: str | None = None


def _readable_alarm_id(obj: object) -> str | None:
    if isinstance(obj, dict):
        value = obj.get("alarm_id")
        if isinstance(value, str) and _ALARM_ID_RE.match(value):
            return value
    return None


class _Constant(ValueError):
    pass


def _no_constant(name: str) -> object:
    raise _Constant(f"{name} is not a JSON number")


def _shape_problem(obj: object) -> str | None:
    """Depth, non-finite numbers and integers beyond 64 bits, found without recursion."""
    stack: list[tuple[object, int]] = [(obj, 1)]
    while stack:
        value, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth > MAX_DEPTH:
                return f"payload is nested more than {MAX_DEPTH} levels deep"
            children = value.values() if isinstance(value, dict) else value
            stack.extend((child, depth + 1) for child in children)
        elif isinstance(value, float) and not math.isfinite(value):
            return "a number is out of range"
        elif isinstance(value, int) and not isinstance(value, bool) and not -_INT_LIMIT <= value < _INT_LIMIT:
            return "an integer is out of range (more than 64 bits)"
    return None


class _DuplicateKey(ValueError):
    pass


def _unique_pairs(items: list[tuple[str, object]]) -> dict[str, object]:
    out = dict(items)
    if len(out) != len(items):
        raise _DuplicateKey
    return out


# Built once: ``json.loads`` with hooks builds a decoder (and its scanner) on every call, which was a quarter of the
# gateway's CPU per alarm under a flood (docs/benchmarks.md, "Flood").
_DECODER = json.JSONDecoder(object_pairs_hook=_unique_pairs, parse_constant=_no_constant)


def _load(payload: bytes, max_bytes: int) -> dict[str, object] | Rejection:
    if len(payload) > max_bytes:
        return Rejection(f"payload is {len(payload)} bytes, over the {max_bytes} byte limit", "oversize")
    try:  # the common case: no key twice (the same decoding as json.loads: its encoding detection, surrogatepass)
        obj = _DECODER.decode(payload.decode(json.detect_encoding(payload), "surrogatepass"))
    except RecursionError:
        return Rejection(f"payload is nested more than {MAX_DEPTH} levels deep", "too_deep")
    except _DuplicateKey:
        return _load_naming_duplicates(payload)
    except (UnicodeDecodeError, ValueError):
        return Rejection("payload is not JSON", "not_json")
    return _checked(obj, [])


def _load_naming_duplicates(payload: bytes) -> dict[str, object] | Rejection:
    """The rare payload with a key twice, decoded again to name the key (and read the alarm id if it is not it)."""
    duplicates: list[str] = []

    def pairs(items: list[tuple[str, object]]) -> dict[str, object]:
        out: dict[str, object] = {}
        for key, value in items:
            if key in out:
                duplicates.append(key)
            out[key] = value
        return out

    try:
        obj = json.loads(payload, object_pairs_hook=pairs, parse_constant=_no_constant)
    except RecursionError:
        return Rejection(f"payload is nested more than {MAX_DEPTH} levels deep", "too_deep")
    except (UnicodeDecodeError, ValueError):
        return Rejection("payload is not JSON", "not_json")
    return _checked(obj, duplicates)


def _checked(obj: object, duplicates: list[str]) -> dict[str, object] | Rejection:
    if not isinstance(obj, dict):
        return Rejection("payload is not a JSON object", "not_object")
    alarm_id = None if "alarm_id" in duplicates else _readable_alarm_id(obj)
    if duplicates:
        return Rejection(f"key {duplicates[0][:64]!r} appears more than once", "duplicate_key", alarm_id)
    problem = _shape_problem(obj)
    if problem is not None:
        return Rejection(problem, "too_deep" if "nested" in problem else "invalid", alarm_id)
    return obj


def _errors(exc: ValidationError) -> str:
    parts = []
    for err in exc.errors()[:5]:
        where = ".".join(str(p) for p in err["loc"]) or "payload"
        parts.append(f"{where}: {err['msg']}")
    return "; ".join(parts)


def _check_device(model_device_id: str | None, topic_device_id: str, alarm_id: str) -> Rejection | None:
    if model_device_id is not None and model_device_id != topic_device_id:
        return Rejection(
            f"device_id {model_device_id!r} in payload differs from topic device {topic_device_id!r}",
            "device_mismatch",
            alarm_id,
        )
    return None


def _unexpected(exc: Exception, alarm_id: str | None) -> Rejection:
    return Rejection(f"payload could not be validated ({type(exc).__name__})", "invalid", alarm_id)


def parse_alarm(topic_device_id: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> AlarmMessage | Rejection:
    loaded = _load(payload, max_bytes)
    if isinstance(loaded, Rejection):
        return loaded
    alarm_id = _readable_alarm_id(loaded)
    try:
        alarm = AlarmMessage.model_validate_json(payload)
    except ValidationError as exc:
        return Rejection(_errors(exc), "invalid", alarm_id)
    except Exception as exc:  # the contract promises a rejection, never an exception
        return _unexpected(exc, alarm_id)
    if alarm.type not in DEVICE_ALARM_TYPES:
        return Rejection(f"alarm type {alarm.type.value!r} is raised by the gateway only", "invalid", alarm.alarm_id)
    return _check_device(alarm.device_id, topic_device_id, alarm.alarm_id) or alarm


def parse_cancel(topic_device_id: str, payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> AlarmCancel | Rejection:
    loaded = _load(payload, max_bytes)
    if isinstance(loaded, Rejection):
        return loaded
    alarm_id = _readable_alarm_id(loaded)
    try:
        cancel = AlarmCancel.model_validate_json(payload)
    except ValidationError as exc:
        return Rejection(_errors(exc), "invalid", alarm_id)
    except Exception as exc:
        return _unexpected(exc, alarm_id)
    return _check_device(cancel.device_id, topic_device_id, cancel.alarm_id) or cancel


def parse_model(model: type[M], payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> M | Rejection:
    """Any other JSON payload of the contract (camera signaling, ...): the model, or a rejection."""
    if len(payload) > max_bytes:
        return Rejection(f"payload is {len(payload)} bytes, over the {max_bytes} byte limit", "oversize")
    try:
        return model.model_validate_json(payload)
    except ValidationError as exc:
        return Rejection(_errors(exc), "invalid")
    except Exception as exc:
        return _unexpected(exc, None)


def parse_heartbeat(payload: bytes, max_bytes: int = MAX_PAYLOAD_BYTES) -> Heartbeat | Rejection:
    """A heartbeat. On the hot path (thousands a second): one pass of pydantic's own JSON parser, which bounds
    nesting itself; its unknown fields are not kept anywhere, so they are not checked further."""
    return parse_model(Heartbeat, payload, max_bytes)


def parse_status(payload: bytes) -> DeviceStatus | Rejection:
    """The retained ``status``: plain text ``online`` or ``offline`` (case and surrounding space ignored)."""
    if len(payload) > 64:
        return Rejection("status is longer than 64 bytes", "invalid_status")
    text = payload.decode("utf-8", errors="replace").strip().lower()
    try:
        return DeviceStatus(text)
    except ValueError:
        return Rejection("status is neither 'online' nor 'offline'", "invalid_status")
