"""Refusals in the agreed shape on both services, and what the logs keep of them (trygg/errors.py).

Every 4xx body is ``{"detail", "code", "params"}``; a 422 names the field and the constraint; the request body
(a note can be a person's health) never goes into a log line, only its size and the codes.
"""

from __future__ import annotations

import ast
import logging
import re
from pathlib import Path
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from structlog.testing import capture_logs

from devices import DeviceType
from testing.broker import Broker
from testing.harness import Api, create_user, make_settings, prepare_stores, running_gateway, running_receiver

# A note nobody may find in a log: a person's health, 100,000 characters of it.
SECRET = "Astrid-har-diabetes-och-dörrkod-4711 "
LONG_NOTE = (SECRET * (100_000 // len(SECRET) + 1))[:100_000]


def _logged(records: list[dict[str, Any]], caplog: pytest.LogCaptureFixture) -> str:
    return repr(records) + "\n".join(r.getMessage() for r in caplog.records)


def _count(metric: str, code: str) -> float:
    return REGISTRY.get_sample_value(metric, {"reason": code}) or 0.0


async def test_receiver_refusals_are_coded_and_logs_keep_no_note(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT})
    await create_user(s, "op", "operator")
    caplog.set_level(logging.DEBUG)
    async with running_receiver(s) as receiver:
        api = Api(s)
        await api.login("op")
        item = {
            "kind": "alarm",
            "device_id": "p1",
            "alarm_id": "a1",
            "type": "fall",
            "priority": 8,
            "device_ts": "2026-11-29T02:00:00Z",
            "stored_at": "2026-11-29T02:00:00Z",
        }
        token = s.intake_token.get_secret_value()
        r = await api.http.post("/api/v1/intake", json={"items": [item]}, headers={"Authorization": f"Bearer {token}"})
        assert r.status_code == 200, r.text
        pk = (await api.alarms())[0]["id"]

        # a 422: the note is over 2,000 characters
        before = _count("trygg_receiver_rejected_requests_total", "request.invalid")
        with capture_logs() as records:
            r = await api.http.post(f"/api/v1/alarms/{pk}/notes", json={"note": LONG_NOTE})
        assert r.status_code == 422
        body = r.json()
        assert body["code"] == "request.invalid"
        assert {k: body["params"][k] for k in ("field", "type", "max_length")} == {
            "field": "note",
            "type": "string_too_long",
            "max_length": 2000,
        }
        assert body["detail"] == "note: String should have at most 2000 characters"
        assert SECRET not in r.text  # not echoed back either
        logged = _logged(records, caplog)
        assert SECRET not in logged and "diabetes" not in logged
        [line] = [e for e in records if e["event"] == "invalid request"]
        assert line["size"] >= 100_000 and line["problems"] == "note:string_too_long"
        assert _count("trygg_receiver_rejected_requests_total", "request.invalid") == before + 1

        # a 409: acknowledged twice
        assert (await api.act(pk, "acknowledge")).status_code == 200
        with capture_logs() as records:
            r = await api.act(pk, "acknowledge", {"note": SECRET})
        assert r.status_code == 409
        assert r.json() == {
            "detail": "cannot acknowledge an alarm that is acknowledged",
            "code": "alarm.transition_refused",
            "params": {"action": "acknowledge", "state": "acknowledged"},
        }
        assert SECRET not in _logged(records, caplog)
        # a 422 from a refused patrol: the name is a parameter, the log has only the code
        r = await api.act(pk, "assign", {"patrol": "nobody", "note": SECRET})
        assert r.status_code == 422 and r.json()["code"] == "alarm.not_a_patrol"
        assert r.json()["params"] == {"patrol": "nobody"}
        # 404 (an alarm, a route), 401 (no token, a bad token), 403 (role)
        assert (await api.http.get("/api/v1/alarms/999999")).json()["code"] == "alarm.not_found"
        assert (await api.http.get("/api/v1/nowhere")).json()["code"] == "http.not_found"
        async with httpx.AsyncClient(base_url=s.receiver_url) as anon:
            assert (await anon.get("/api/v1/alarms")).json()["code"] == "auth.not_logged_in"
            bad = await anon.get("/api/v1/alarms", headers={"Authorization": "Bearer nope"})
            assert bad.status_code == 401 and bad.json()["code"] == "auth.session_ended"  # unknown: not "expired"
            login = await anon.post("/api/v1/auth/token", json={"username": "op", "password": "wrong-password"})
            assert login.status_code == 401 and login.json()["code"] == "auth.bad_credentials"
        r = await api.http.post("/api/v1/intake", json={"items": []})
        assert r.status_code == 401 and r.json()["code"] == "auth.intake_token"
        # the gateway's API through the receiver, with no gateway running: the same body, counted by its code
        before = _count("trygg_receiver_rejected_requests_total", "gateway.unreachable")
        r = await api.http.get("/gw/api/v1/devices")
        assert r.status_code == 503 and r.json()["code"] == "gateway.unreachable"
        assert _count("trygg_receiver_rejected_requests_total", "gateway.unreachable") == before + 1
        assert receiver is not None
        await api.close()
    assert SECRET not in "\n".join(r.getMessage() for r in caplog.records)


async def test_gateway_refusals_are_coded_and_logs_keep_no_text(
    broker: Broker, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"cam9": DeviceType.CAMERA, "p9": DeviceType.PENDANT})
    await create_user(s, "case", "case_officer")
    await create_user(s, "tech", "technician")
    caplog.set_level(logging.DEBUG)
    async with running_receiver(s), running_gateway(s, http=True):
        case = Api(s)
        await case.login("case")
        consent = {
            "client_ref": "astrid",
            "camera_id": "cam9",
            "consented_by": [{"name": "Astrid", "role": "client"}],
            "basis": LONG_NOTE,
        }
        with capture_logs() as records:
            r = await case.http.post("/gw/api/v1/consents", json=consent)  # through the receiver's proxy
        assert r.status_code == 422
        body = r.json()
        assert body["code"] == "request.invalid"
        assert body["params"]["field"] == "basis" and body["params"]["type"] == "string_too_long"
        assert SECRET not in r.text and SECRET not in _logged(records, caplog)
        # a refusal with parameters: the device is no camera
        r = await case.http.post("/gw/api/v1/consents", json=consent | {"camera_id": "p9", "basis": "beslut 1"})
        assert r.status_code == 400
        assert r.json()["code"] == "consent.not_a_camera"
        assert r.json()["params"] == {"camera_id": "p9", "device_type": "pendant"}
        r = await case.http.get("/gw/api/v1/checkins/4242")
        assert r.status_code == 404 and r.json()["code"] == "checkin.not_found"
        # roles: a case officer is no technician
        r = await case.http.put("/gw/api/v1/devices/p9/config", json={"heartbeat_interval_s": 120})
        assert r.status_code == 403 and r.json() == {
            "detail": "role 'case_officer' may not do this",
            "code": "auth.forbidden",
            "params": {"role": "case_officer"},
        }
        tech = Api(s)
        await tech.login("tech")
        r = await tech.http.get("/gw/api/v1/devices/nope")
        assert r.status_code == 404 and r.json()["code"] == "device.not_found"
        await tech.close()
        await case.close()
    assert SECRET not in "\n".join(r.getMessage() for r in caplog.records)


def test_the_console_translates_every_code_the_services_use() -> None:
    """Every code in the services' source (refusals, history lines, texts, outcomes) has Swedish and English in
    the console (static/messages.js). Audit-log action names look alike and are not shown as messages: they are
    left out (``action=...``, and the action arguments of the check-in helpers in gateway/checkin/tasks.py), and so
    are ASGI message types (``http.request``, read by the bad-text guard in trygg/errors.py)."""
    root = Path(__file__).resolve().parent.parent
    spaces = "alarm|auth|http|request|gateway|feature|device|consent|checkin|look|outcome|task|area|test"
    pattern = re.compile(rf"^({spaces})\.[a-z_]+$")
    found: set[str] = set()
    actions: set[str] = {"http.request", "http.disconnect"}  # ASGI message types: no messages either
    for path in [*root.glob("alarm_receiver/**/*.py"), *root.glob("gateway/**/*.py"), *root.glob("trygg/**/*.py")]:
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and pattern.match(node.value):
                found.add(node.value)
            if isinstance(node, ast.Call):
                for kw in node.keywords:
                    if kw.arg == "action" and isinstance(kw.value, ast.Constant):
                        actions.add(str(kw.value.value))
                name = getattr(node.func, "attr", getattr(node.func, "id", ""))
                position = {"refused": 2, "set_state": 5, "log_by": 2}.get(name)
                if position is not None and len(node.args) > position and isinstance(node.args[position], ast.Constant):
                    actions.add(str(node.args[position].value))
    static = root / "alarm_receiver" / "console" / "static"
    js = (static / "messages.js").read_text(encoding="utf-8")
    sv, en = js.split("\n  en: {", 1)
    # the client register's codes live in its own module (static/clients_i18n.js: ``codes``, sv then en)
    clients_codes = (static / "clients_i18n.js").read_text(encoding="utf-8").split("const codes = {", 1)[1]
    clients_sv, clients_en = clients_codes.split("\n  en: {", 1)
    for language, text in (("sv", sv + clients_sv), ("en", en + clients_en)):
        known = set(re.findall(r'"([a-z_]+\.[a-z_]+)":', text))
        missing = (found - actions) - known
        # a code built in an f-string (``f"alarm.lock_{state}"``) is found as its prefix: known keys must extend it
        missing = {c for c in missing if not (c.endswith("_") and any(k.startswith(c) for k in known))}
        assert missing == set(), language
    assert {"alarm.assigned", "request.invalid", "device.silent", "outcome.seen_ok"} <= found
