"""Every refusal of the gateway's API has one body: the English ``detail`` as before, a stable ``code`` the console
translates, and its ``params`` (wire.ErrorBody, built by trygg/errors.py for both services: the same codes as the
receiver's for the same refusal)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import httpx

from devices import DeviceType
from testing.broker import Broker
from testing.harness import Api, create_user, make_settings, prepare_stores, running_gateway, running_receiver
from wire import ErrorBody


def refusal(r: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert r.status_code == status, r.text
    body: dict[str, Any] = r.json()
    ErrorBody.model_validate(body)
    assert body["code"] == code, body
    return body


async def test_refusals_carry_detail_code_and_params(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"p1": DeviceType.PENDANT, "cam1": DeviceType.CAMERA})
    for user, role in (("tech", "technician"), ("op", "operator"), ("case", "case_officer")):
        await create_user(s, user, role)
    async with running_receiver(s), running_gateway(s, http=True):
        tokens = {}
        for user in ("tech", "op", "case"):
            api = Api(s)
            await api.login(user)
            tokens[user] = {"Authorization": f"Bearer {api.token}"}
            await api.close()
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{s.gateway_http_port}") as http:
            body = refusal(await http.get("/api/v1/devices"), 401, "auth.not_logged_in")
            assert body["detail"] == "not logged in"
            r = await http.get("/api/v1/devices", headers={"Authorization": "Bearer nope"})
            assert refusal(r, 401, "auth.session_ended") and r.headers["www-authenticate"] == "Bearer"  # unknown
            body = refusal(await http.post("/api/v1/devices", json={}, headers=tokens["op"]), 403, "auth.forbidden")
            assert body["detail"] == "role 'operator' may not do this" and body["params"] == {"role": "operator"}

            body = refusal(await http.get("/api/v1/devices/nope", headers=tokens["tech"]), 404, "device.not_found")
            assert body["params"] == {"device_id": "nope"}
            again = {"id": "p1", "type": "pendant"}
            body = refusal(
                await http.post("/api/v1/devices", json=again, headers=tokens["tech"]), 409, "device.already_registered"
            )
            assert "already registered" in body["detail"]
            body = refusal(await http.get("/api/v1/consents/999", headers=tokens["case"]), 404, "consent.not_found")
            assert body == {"detail": "no consent 999", "code": "consent.not_found", "params": {"consent_id": 999}}
            consent = {
                "client_ref": "client-a",
                "camera_id": "p1",
                "consented_by": [{"name": "A", "role": "client"}],
                "basis": "decision",
            }
            body = refusal(
                await http.post("/api/v1/consents", json=consent, headers=tokens["case"]), 400, "consent.not_a_camera"
            )
            assert body["params"] == {"camera_id": "p1", "device_type": "pendant"}

            body = refusal(
                await http.put("/api/v1/devices/p1/config", json={}, headers=tokens["tech"]), 422, "request.invalid"
            )
            assert body["params"]["field"] == "heartbeat_interval_s" and body["params"]["type"] == "missing"
            assert body["detail"] == "heartbeat_interval_s: Field required"
            refusal(await http.get("/api/v1/nowhere", headers=tokens["tech"]), 404, "http.not_found")
            refusal(await http.get("/metrics"), 401, "auth.metrics_token")
