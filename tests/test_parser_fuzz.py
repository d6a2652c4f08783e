"""Fuzzing the device payload parsers (hypothesis): whatever a device sends, a parser answers with a model or a
rejection and never raises; and what it accepts can be stored as strict JSON (what PostgreSQL's json type takes).

Covers deep nesting, huge numbers, extreme dates, invalid UTF-8, duplicate keys, lone surrogates and plain garbage,
for the alarm, cancel, heartbeat, status and camera topics."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import timedelta, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from devices import AlarmMessage, Heartbeat, Rejection, parse_alarm, parse_cancel, parse_heartbeat, parse_status
from devices.camera import CameraAnswer, CameraEnd, CameraState
from devices.validation import parse_model

FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PARSERS: dict[str, Callable[[bytes], object]] = {
    "alarm": lambda p: parse_alarm("dev-1", p),
    "cancel": lambda p: parse_cancel("dev-1", p),
    "heartbeat": parse_heartbeat,
    "status": parse_status,
    "camera/answer": lambda p: parse_model(CameraAnswer, p),
    "camera/end": lambda p: parse_model(CameraEnd, p),
    "camera/state": lambda p: parse_model(CameraState, p),
}


def check_all(payload: bytes) -> None:
    """Every parser: a result, never an exception; an accepted alarm is storable as strict JSON."""
    for name, parse in PARSERS.items():
        try:
            result = parse(payload)
        except BaseException as exc:  # the property under test: nothing escapes
            raise AssertionError(f"{name} parser raised {type(exc).__name__} for {payload[:200]!r}") from exc
        assert result is not None
        if isinstance(result, AlarmMessage):
            stored = result.contract_fields() | {"device_extra": result.device_extra()}
            json.dumps(stored, allow_nan=False)
        if isinstance(result, Rejection):
            assert result.code and result.reason


json_scalars = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(10**30), max_value=10**30)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=30)
)
json_values = st.recursive(
    json_scalars,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=20,
)
offsets = st.integers(min_value=-14 * 60, max_value=14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
extreme_dates = st.one_of(
    st.datetimes(timezones=offsets).map(lambda d: d.isoformat()),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59-14:00",
            "9999-12-31T23:59:59.999999+00:00",
            "2026-02-30T00:00:00Z",
            "2026-11-29T25:00:00Z",
            "+002026-11-29T00:00:00Z",
            "2026-11-29T00:00:00+99:99",
            "",
        ]
    ),
    st.text(max_size=40),
)
base_alarm = st.fixed_dictionaries(
    {
        "alarm_id": st.sampled_from(["a1", "x" * 64, "bad id", ""]),
        "type": st.sampled_from(["fall", "smoke", "assistance", "device_offline", "bogus"]),
        "ts": extreme_dates,
    },
    optional={
        "priority": json_values,
        "battery_pct": json_values,
        "location": json_values,
        "text": json_values,
        "device_id": st.sampled_from(["dev-1", "other"]),
        "is_test": json_values,
        "client_ref": json_values,
        "extra": json_values,
    },
)


def dumps(obj: Any) -> bytes:
    return json.dumps(obj, allow_nan=True).encode()


@FUZZ
@given(st.binary(max_size=600))
def test_arbitrary_bytes(payload: bytes) -> None:
    check_all(payload)


@FUZZ
@given(base_alarm)
def test_alarm_shaped_payloads_with_odd_values(body: dict[str, Any]) -> None:
    check_all(dumps(body))
    check_all(dumps({**body, "mains": body.get("ts"), "state": "idle", "look_id": "l1"}))


@FUZZ
@given(st.integers(min_value=1, max_value=3000), st.sampled_from(["[", "{"]), st.sampled_from(["alarm", "extra"]))
def test_deep_nesting(depth: int, opener: str, key: str) -> None:
    if opener == "[":
        nested = "[" * depth + "]" * depth
    else:
        nested = '{"a":' * depth + "1" + "}" * depth
    check_all(f'{{"alarm_id":"a1","type":"fall","ts":"2026-11-29T00:00:00Z","{key}":{nested}}}'.encode())
    check_all(nested.encode())


@FUZZ
@given(
    st.sampled_from(["priority", "battery_pct", "extra", "signal_dbm", "config_version", "lat"]),
    st.one_of(
        st.integers(min_value=4, max_value=5000).map(lambda n: "9" * n),
        st.sampled_from(["1e999", "-1e999", "1e-999", "NaN", "Infinity", "-Infinity", "1.7976931348623157e309"]),
        st.integers().map(str),
        st.floats().map(repr),
    ),
)
def test_huge_and_non_finite_numbers(field: str, number: str) -> None:
    check_all(f'{{"alarm_id":"a1","type":"fall","ts":"2026-11-29T00:00:00Z","{field}":{number}}}'.encode())
    check_all(f'{{"ts":"2026-11-29T00:00:00Z","{field}":{number}}}'.encode())


@FUZZ
@given(st.binary(min_size=1, max_size=8), st.integers(min_value=0, max_value=80))
def test_invalid_utf8_anywhere(junk: bytes, at: int) -> None:
    good = b'{"alarm_id":"a1","type":"fall","ts":"2026-11-29T00:00:00Z","text":"hej"}'
    at = min(at, len(good))
    check_all(good[:at] + junk + good[at:])
    check_all(b'{"alarm_id":"a1","type":"fall","ts":"2026-11-29T00:00:00Z","text":"' + junk + b'"}')


@FUZZ
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["alarm_id", "type", "ts", "priority", "text", "x", "look_id", "state"]), json_values
        ),
        min_size=2,
        max_size=8,
    )
)
def test_duplicate_keys(pairs: list[tuple[str, Any]]) -> None:
    pairs = [*pairs, pairs[0]]  # at least one key twice
    text = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"
    check_all(text.encode())


@FUZZ
@given(st.sampled_from(["\\ud800", "\\udc00", "\\ud800\\ud800", "\\u0000", "\\uffff", "\\ud83d\\ude00"]))
def test_surrogates_and_control_characters(escape: str) -> None:
    check_all(
        f'{{"alarm_id":"a1","type":"fall","ts":"2026-11-29T00:00:00Z","text":"{escape}","x":"{escape}"}}'.encode()
    )
    check_all(f'{{"{escape}":1,"ts":"2026-11-29T00:00:00Z"}}'.encode())


def test_the_issues_payloads_are_rejections() -> None:
    deep = b'{"alarm_id":"d","type":"fall","x":' + b"[" * 1000 + b"]" * 1000 + b"}"
    rejected = parse_alarm("dev-1", deep)
    assert isinstance(rejected, Rejection) and rejected.code == "too_deep"
    overflow = parse_alarm("dev-1", b'{"alarm_id":"o","type":"fall","ts":"0001-01-01T00:00:00+14:00"}')
    assert isinstance(overflow, Rejection) and overflow.code == "invalid" and overflow.alarm_id == "o"
    assert isinstance(parse_heartbeat(b'{"ts":"0001-01-01T00:00:00+14:00"}'), Rejection)
    duplicated = parse_alarm("dev-1", b'{"alarm_id":"a","type":"bed_exit","ts":"2026-11-29T00:00:00Z","type":"fall"}')
    assert isinstance(duplicated, Rejection) and duplicated.code == "duplicate_key" and duplicated.alarm_id == "a"
    assert isinstance(Heartbeat.model_validate_json(b'{"ts":"2026-11-29T00:00:00Z"}'), Heartbeat)


@FUZZ
@given(
    st.lists(st.tuples(st.sampled_from(["alarm_id", "type", "a", "b"]), json_scalars), max_size=6),
    st.binary(max_size=8),
)
def test_the_decoder_built_once_decides_as_the_one_that_names_duplicate_keys(pairs: list[Any], tail: bytes) -> None:
    """devices.validation decodes with one decoder built once and, only when a key appears twice, again with one
    that names the key: both decide every payload alike (keys drawn from a few, so duplicates are common)."""
    from devices.validation import _load, _load_naming_duplicates

    body = "{" + ",".join(f"{json.dumps(k)}:{json.dumps(v)}" for k, v in pairs) + "}"
    for payload in (body.encode(), body.encode() + tail, body.encode("utf-16")):
        assert _load(payload, 10_000) == _load_naming_duplicates(payload)
