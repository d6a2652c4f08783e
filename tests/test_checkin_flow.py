"""Camera check-ins end to end: real Mosquitto, receiver, gateway HTTP and logins; a controllable clock."""

from __future__ import annotations

from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx

from devices import DeviceType
from gateway.app import create_app
from gateway.checkin.feature import CheckinFeature
from gateway.checkin.media import LookEnded
from gateway.checkin.privacy import PrivacyMode
from gateway.service import Gateway
from testing.broker import Broker
from testing.harness import Api, LiveFeedReader, create_user, make_settings, prepare_stores, running_receiver
from trygg import audit
from trygg.db import engine_scope, session_factory
from trygg.serve import serving


class FakeRelay:
    """Stands in for the WebRTC relay (driving a real camera peer is docs/camera.md's tests' job)."""

    def __init__(self) -> None:
        self.listeners: list[Callable[[LookEnded], None]] = []
        self.started: list[dict[str, Any]] = []
        self.ended: list[tuple[str, str]] = []
        self.live: dict[str, datetime] = {}

    async def start_look(self, **kw: Any) -> dict[str, str]:
        assert isinstance(kw["privacy"], PrivacyMode)
        self.started.append(kw)
        self.live[kw["look_id"]] = datetime.now(UTC)
        return {"sdp": "answer-sdp", "type": "answer"}

    async def end_look(self, look_id: str, reason: str) -> None:
        started = self.live.pop(look_id, None)
        if started is None:
            return
        self.ended.append((look_id, reason))
        end = datetime.now(UTC)
        ev = LookEnded(look_id, "cam1", reason, started, end, (end - started).total_seconds(), 42)
        for cb in self.listeners:
            cb(ev)

    def add_listener(self, callback: Callable[[LookEnded], None]) -> None:
        self.listeners.append(callback)

    def camera_state(self, camera_id: str) -> str | None:
        return "idle"


def at(y: int, mo: int, d: int, h: int = 0, mi: int = 0) -> datetime:
    return datetime(y, mo, d, h, mi, tzinfo=UTC)


async def test_checkin_flow(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url, checkin_start_timeout_s=600)
    await prepare_stores(s, {"cam1": DeviceType.CAMERA})
    for user, role in (("case", "case_officer"), ("op", "operator"), ("tech", "technician"), ("pat", "patrol")):
        await create_user(s, user, role)
    clock = [at(2026, 1, 10, 12)]
    online: dict[str, bool] = {"cam1": True}
    relay = FakeRelay()
    gw = Gateway(
        s,
        features=lambda port: [
            CheckinFeature(port, relay, now=lambda: clock[0], background=False, status_source=online.get)
        ],
    )
    feature = gw.feature(CheckinFeature)
    base = f"http://127.0.0.1:{s.gateway_http_port}/api/v1"

    async with running_receiver(s), serving(create_app(s, gw), s.gateway_http_host, s.gateway_http_port):
        apis: dict[str, Api] = {}
        for user in ("case", "op", "tech", "pat"):
            apis[user] = Api(s)
            await apis[user].login(user)

        def hdr(user: str) -> dict[str, str]:
            return {"Authorization": f"Bearer {apis[user].token}"}

        offer = {"sdp": "v=0 offer", "type": "offer"}
        async with httpx.AsyncClient(base_url=base, timeout=10) as http, LiveFeedReader(apis["op"]) as feed:
            body = {
                "client_ref": "client-a",
                "camera_id": "cam1",
                "consented_by": [{"name": "Astrid", "role": "client"}, {"name": "Bo", "role": "cohabitant"}],
                "basis": "decision 2026-0042",
                "times": ["23:00", "02:00", "05:00"],
                "privacy": "blurred",
            }
            assert (await http.post("/consents", json=body, headers=hdr("op"))).status_code == 403
            r = await http.post("/consents", json=body, headers=hdr("case"))
            assert r.status_code == 201, r.text
            consent_id = r.json()["id"]
            assert r.json()["escalation"] == ["recheck", "phone", "patrol_visit"] and r.json()["recheck_min"] == 15

            # 23:00 Stockholm (22:00 UTC): due, in the operators' queue with its time and client.
            clock[0] = at(2026, 1, 10, 22)
            await feature.run_once()
            await feature.run_once()  # restart-safe: nothing made due twice
            due = await feed.next_alarm(alarm_id="checkin-1", state="new")
            assert due["type"] == "checkin_due" and due["details"]["client_ref"] == "client-a"
            assert due["details"]["due_at"].startswith("2026-01-10T22:00")

            # Refusals: technician, patrol; each logged.
            for who in ("tech", "pat"):
                r = await http.post("/checkins/1/look", json=offer, headers=hdr(who))
                assert r.status_code == 403 and "operators only" in r.json()["detail"]
            assert relay.started == []

            # The operator looks: blurred, 30 s cap; ends; not seen -> recheck 15 min later.
            r = await http.post("/checkins/1/look", json=offer, headers=hdr("op"))
            assert r.status_code == 200, r.text
            look = r.json()
            assert look["sdp"] == "answer-sdp" and look["max_s"] == 30 and look["privacy"] == "blurred"
            assert relay.started[0]["privacy"] is PrivacyMode.BLURRED and relay.started[0]["audio"] is False
            assert (await http.post(f"/looks/{look['look_id']}/end", headers=hdr("op"))).status_code == 204
            r = await http.post("/checkins/1/outcome", json={"outcome": "not_seen"}, headers=hdr("op"))
            assert r.status_code == 200 and r.json()["state"] == "done", r.text
            await feed.next_alarm(alarm_id="checkin-1", state="resolved")

            clock[0] += timedelta(minutes=15)
            await feature.run_once()
            recheck = await feed.next_alarm(type="checkin_due", state="new")
            recheck_id = recheck["details"]["checkin_id"]
            assert recheck["details"]["kind"] == "recheck"
            r = await http.post(f"/checkins/{recheck_id}/look", json=offer, headers=hdr("op"))
            assert r.status_code == 200
            r = await http.post(f"/checkins/{recheck_id}/outcome", json={"outcome": "not_seen"}, headers=hdr("op"))
            assert r.status_code == 200
            phone = await feed.next_alarm(type="checkin_due", state="new")
            assert phone["details"]["kind"] == "phone" and "Phone the client" in (phone["details"]["text"])
            phone_id = phone["details"]["checkin_id"]
            r = await http.post(f"/checkins/{phone_id}/outcome", json={"outcome": "not_seen"}, headers=hdr("op"))
            assert r.status_code == 200
            patrol = await feed.next_alarm(type="patrol_visit", state="new")
            assert patrol["alarm_id"] == f"patrol-{phone_id}" and patrol["priority"] == 7

            # Outside the window (noon): refused and logged.
            clock[0] = at(2026, 1, 11, 11)
            r = await http.post("/checkins/1/look", json=offer, headers=hdr("op"))
            assert r.status_code == 403 and "outside the agreed night window" in r.json()["detail"]

            # 02:00 slot was made due while we were busy; nobody starts it: timeout -> patrol, missed.
            clock[0] = at(2026, 1, 11, 1)
            await feature.run_once()
            await feed.next_alarm(type="checkin_due", state="new")
            clock[0] = at(2026, 1, 11, 1, 10)
            await feature.run_once()
            missed_patrol = await feed.next_alarm(type="patrol_visit", state="new")
            assert "not started within 10 min" in missed_patrol["details"]["text"]

            # Camera offline at 05:00 -> physical visit at once.
            online["cam1"] = False
            clock[0] = at(2026, 1, 11, 4)
            await feature.run_once()
            offline_patrol = await feed.next_alarm(type="patrol_visit", state="new")
            assert "offline" in offline_patrol["details"]["text"]
            online["cam1"] = True

            # Skipped night: the next night's looks are refused and nothing becomes due.
            r = await http.post(f"/consents/{consent_id}/skip", json={"night": "2026-01-11"}, headers=hdr("case"))
            assert r.status_code == 204
            clock[0] = at(2026, 1, 11, 22)
            await feature.run_once()
            r = await http.get("/checkins", params={"state": "due"}, headers=hdr("op"))
            assert r.json() == []
            r = await http.post("/checkins/1/look", json=offer, headers=hdr("op"))
            assert r.status_code == 403 and "skipped" in r.json()["detail"]

            # Next night: due, a look is live; withdrawal ends it and cancels the check-in's task.
            clock[0] = at(2026, 1, 12, 22)
            await feature.run_once()
            nxt = await feed.next_alarm(type="checkin_due", state="new")
            nxt_id = nxt["details"]["checkin_id"]
            r = await http.post(f"/checkins/{nxt_id}/look", json=offer, headers=hdr("op"))
            assert r.status_code == 200
            live_id = r.json()["look_id"]
            clock[0] = at(2026, 1, 13, 1)  # 02:00 due too, before withdrawal
            await feature.run_once()
            second = await feed.next_alarm(type="checkin_due", state="new")
            r = await http.post(
                f"/consents/{consent_id}/withdraw", json={"reason": "client said stop"}, headers=hdr("op")
            )
            assert r.status_code == 200 and r.json()["withdrawn_at"] is not None
            assert (live_id, "withdrawn") in relay.ended
            gone = await feed.next_alarm(alarm_id=second["alarm_id"], state="resolved")
            assert gone["outcome"] == "consent withdrawn"
            clock[0] = at(2026, 1, 13, 4)
            await feature.run_once()
            r = await http.get("/checkins", params={"state": "due"}, headers=hdr("op"))
            assert r.json() == []
            r = await http.post(f"/checkins/{second['details']['checkin_id']}/look", json=offer, headers=hdr("op"))
            assert r.status_code == 403 and "withdrawn" in r.json()["detail"]

            # The client's log: case officers only; reading it is logged.
            assert (await http.get("/clients/client-a/log", headers=hdr("op"))).status_code == 403
            r = await http.get("/clients/client-a/log", headers=hdr("case"))
            assert r.status_code == 200
            actions = [e["action"] for e in r.json()]
            for a in (
                "consent.given",
                "checkin.due",
                "checkin.look_refused",
                "checkin.look_started",
                "checkin.look_ended",
                "checkin.outcome",
                "escalation.recheck",
                "escalation.phone",
                "escalation.patrol_visit",
                "consent.night_skipped",
                "consent.withdrawn",
                "log.read",
            ):
                assert a in actions, a
            refused = [e for e in r.json() if e["action"] == "checkin.look_refused"]
            assert {e["actor"] for e in refused} >= {"tech", "pat", "op"}
        for api in apis.values():
            await api.close()

    async with engine_scope(s.gateway_database_url) as engine, session_factory(engine)() as session:
        assert (await audit.verify(session)).ok
