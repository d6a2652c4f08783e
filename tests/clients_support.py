"""Shared by the client-register tests: a receiver with the roles, a client, and alarms sent as the gateway does."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from testing.broker import Broker
from testing.harness import Api, create_user, make_settings, prepare_stores, running_receiver
from trygg.settings import Settings

USERS = {
    "case": "case_officer",
    "op": "operator",
    "p1": "patrol",
    "p2": "patrol",
    "tech": "technician",
}
HEALTH = "Diabetes typ 2, insulin kl 22"
DOOR_CODE = "4711"
KEY_SAFE_CODE = "9081"


def client_body(ref: str = "c-100", **over: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "ref": ref,
        "name": "Astrid Lindqvist",
        "street": "Björkvägen 12",
        "postcode": "123 45",
        "town": "Ekby",
        "floor": "2",
        "entrance": "Port B",
        "door_code": DOOR_CODE,
        "lat": 59.3,
        "lon": 18.1,
        "language": "sv",
        "hard_of_hearing": True,
        "practical_notes": "Katt. Syrgas i sovrummet.",
        "health_notes": HEALTH,
        "care_unit": "Hemtjänst Norr",
        "area": "norr",
        "key_safe_location": "Vänster om dörren",
        "key_safe_code": KEY_SAFE_CODE,
        "key_number": "N-17",
        "contacts": [
            {"name": "Karin Lindqvist", "relation": "dotter", "phone": "+46 70-123 45 67", "has_key": True},
            {"name": "Per Ek", "relation": "granne", "phone": "08-555 12 12", "call_at_night": False},
        ],
    }
    body.update(over)
    return body


@dataclass
class Rig:
    settings: Settings
    api: dict[str, Api] = field(default_factory=dict)

    async def send_alarm(self, device_id: str, alarm_id: str, type_: str = "assistance", **details: Any) -> None:
        now = datetime.now(UTC).isoformat()
        item = {
            "kind": "alarm",
            "device_id": device_id,
            "alarm_id": alarm_id,
            "type": type_,
            "priority": 7,
            "device_ts": now,
            "stored_at": now,
            "details": details,
        }
        assert self.settings.intake_token is not None
        token = self.settings.intake_token.get_secret_value()
        r = await self.api["op"].http.post(
            "/api/v1/intake", json={"items": [item]}, headers={"Authorization": f"Bearer {token}"}
        )
        assert r.status_code == 200, r.text

    async def alarm_of(self, device_id: str, alarm_id: str) -> dict[str, Any]:
        rows = await self.api["op"].alarms(all_states=True, device_id=device_id)
        return next(a for a in rows if a["alarm_id"] == alarm_id)


@asynccontextmanager
async def rig(tmp_path: Path, broker: Broker, **settings: Any) -> AsyncIterator[Rig]:
    s = make_settings(tmp_path, broker.url, **settings)
    await prepare_stores(s)
    for name, role in USERS.items():
        await create_user(s, name, role)
    async with running_receiver(s):
        r = Rig(s)
        try:
            for name in USERS:
                r.api[name] = Api(s)
                await r.api[name].login(name)
            yield r
        finally:
            for a in r.api.values():
                await a.close()
