"""The client register (issue 10): records, the need-to-know rules checked on the API's JSON, every view in the
supervision log and in the client's extract, device moves keeping history, routing missing, search."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path

from testing.broker import Broker
from testing.harness import settings_env
from tests.clients_support import DOOR_CODE, HEALTH, KEY_SAFE_CODE, client_body, rig

PROTECTED = ("health_notes", "door_code", "key_safe_code")


async def test_need_to_know_and_the_log(tmp_path: Path, broker: Broker) -> None:
    async with rig(tmp_path, broker) as r:
        case, op, p1, p2, tech = (r.api[n].http for n in ("case", "op", "p1", "p2", "tech"))
        made = await case.post("/api/v1/clients", json=client_body())
        assert made.status_code == 201, made.text
        cid = made.json()["id"]
        assert made.json()["health_notes"] == HEALTH  # the case officer manages the record
        assert (await op.post("/api/v1/clients", json=client_body("x"))).status_code == 403
        assert (await case.post(f"/api/v1/clients/{cid}/devices", json={"device_id": "dev-1"})).status_code == 201

        await r.send_alarm("dev-1", "a1")
        alarm = await r.alarm_of("dev-1", "a1")
        assert alarm["client_name"] == "Astrid Lindqvist"
        assert alarm["client_address"] == "Björkvägen 12, Ekby"
        assert alarm["client_id"] == cid and alarm["routing_missing"] is False
        pk = alarm["id"]

        # technician: address and devices, never names, health notes or codes (on the JSON, not only the page)
        seen = await tech.get(f"/api/v1/clients/{cid}")
        assert seen.status_code == 200
        body = seen.json()
        assert body["street"] == "Björkvägen 12" and [d["device_id"] for d in body["devices"]] == ["dev-1"]
        for key in (*PROTECTED, "name", "contacts", "practical_notes"):
            assert key not in body, key
        assert HEALTH not in seen.text and DOOR_CODE not in seen.text
        refused = await tech.get(f"/api/v1/clients/{cid}/protected", params={"alarm": pk})
        assert refused.status_code == 403 and refused.json()["code"] == "client.protected_refused"
        assert HEALTH not in refused.text
        found = (await tech.get("/api/v1/clients", params={"q": "dev-1"})).json()
        assert [c["id"] for c in found] == [cid] and found[0]["name"] is None

        # operator: the record without protected fields; those only with an open alarm of this client
        rec = (await op.get(f"/api/v1/clients/{cid}")).json()
        assert rec["name"] == "Astrid Lindqvist" and rec["contacts"][0]["phone"] == "+46 70-123 45 67"
        assert not any(k in rec for k in PROTECTED)
        no_alarm = await op.get(f"/api/v1/clients/{cid}/protected")
        assert no_alarm.status_code == 403 and no_alarm.json()["code"] == "client.needs_open_alarm"
        shown = await op.get(f"/api/v1/clients/{cid}/protected", params={"alarm": pk})
        assert shown.status_code == 200
        assert shown.json() == {
            "client_id": cid,
            "alarm_id": pk,
            "health_notes": HEALTH,
            "door_code": DOOR_CODE,
            "key_safe_code": KEY_SAFE_CODE,
        }

        # patrol: only for an alarm assigned to it
        assert (await p1.get(f"/api/v1/clients/{cid}/protected", params={"alarm": pk})).status_code == 404
        assert (await p1.get(f"/api/v1/clients/{cid}", params={"alarm": pk})).status_code == 404
        assert (await r.api["op"].act(pk, "acknowledge")).status_code == 200
        assert (await r.api["op"].act(pk, "assign", {"patrol": "p1"})).status_code == 200
        assert (await p1.get(f"/api/v1/clients/{cid}/protected", params={"alarm": pk})).json()["door_code"] == DOOR_CODE
        assert (await p1.get(f"/api/v1/clients/{cid}", params={"alarm": pk})).json()["key_number"] == "N-17"
        other = await p2.get(f"/api/v1/clients/{cid}/protected", params={"alarm": pk})
        assert other.status_code == 404 and other.json()["code"] == "client.alarm_not_open"
        assert (await p1.get("/api/v1/clients", params={"q": "Astrid"})).status_code == 403

        # resolved: no longer
        assert (await r.api["op"].act(pk, "resolve", {"outcome": "helped"})).status_code == 200
        assert (await op.get(f"/api/v1/clients/{cid}/protected", params={"alarm": pk})).status_code == 404
        assert (await p1.get(f"/api/v1/clients/{cid}/protected", params={"alarm": pk})).status_code == 404

        # every view of a protected field is in the log with who and which alarm, and in the client's extract
        log = (await case.get(f"/api/v1/clients/{cid}/log")).json()
        views = [(e["actor"], e["details"]["alarm"]) for e in log if e["action"] == "client.protected_viewed"]
        assert views == [("op", pk), ("p1", pk)]
        assert any(e["action"] == "client.viewed" and e["actor"] == "tech" for e in log)
        assert all(e["client_ref"] == "c-100" for e in log)
        # (the entries' own times are left out: a time's microseconds may spell a 4-digit code)
        text = json.dumps([{k: v for k, v in e.items() if k != "at"} for e in log], ensure_ascii=False)
        for secret in (HEALTH, DOOR_CODE, KEY_SAFE_CODE, "Astrid"):
            assert secret not in text  # what was seen is logged, never the values

        # the client's own extract from the command line (loggkontroll): who viewed the record, why, which alarm
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "trygg_cli", "log", "client", "c-100", "--db", "receiver"],
            env=settings_env(r.settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr
        lines = [ln for ln in proc.stdout.splitlines() if "client.protected_viewed" in ln]
        assert len(lines) == 2 and f"why: alarm alarm {pk} (operator)" in lines[0] and " p1 " in lines[1], lines
        assert HEALTH not in proc.stdout and DOOR_CODE not in proc.stdout


async def test_device_moves_routing_missing_and_search(tmp_path: Path, broker: Broker) -> None:
    async with rig(tmp_path, broker) as r:
        case, op, tech = r.api["case"].http, r.api["op"].http, r.api["tech"].http
        c1 = (await case.post("/api/v1/clients", json=client_body("c-1"))).json()["id"]
        no_area = client_body("c-2", name="Bengt Nilsson", street="Ekgatan 3", area=None, contacts=[])
        c2 = (await case.post("/api/v1/clients", json=no_area)).json()["id"]
        await case.post(f"/api/v1/clients/{c1}/devices", json={"device_id": "dev-9"})
        await r.send_alarm("dev-9", "before-move")
        await case.post(f"/api/v1/clients/{c2}/devices", json={"device_id": "dev-9"})
        await r.send_alarm("dev-9", "after-move")
        await r.send_alarm("dev-nobody", "orphan")
        await r.send_alarm("dev-ref", "by-ref", client_ref="c-1")  # the gateway registry's client_ref

        before, after = await r.alarm_of("dev-9", "before-move"), await r.alarm_of("dev-9", "after-move")
        assert before["client_id"] == c1 and before["routing_missing"] is False
        assert after["client_id"] == c2 and after["routing_missing"] is True  # client has no patrol area
        orphan = await r.alarm_of("dev-nobody", "orphan")
        assert orphan["client_id"] is None and orphan["routing_missing"] is True
        assert (await r.alarm_of("dev-ref", "by-ref"))["client_id"] == c1
        detail = (await op.get(f"/api/v1/alarms/{orphan['id']}")).json()
        assert detail["routing_missing"] is True and detail["client_name"] is None

        links = (await case.get(f"/api/v1/clients/{c1}/devices", params={"history": True})).json()
        assert links[0]["device_id"] == "dev-9" and links[0]["unlinked_at"] is not None
        assert (await case.get(f"/api/v1/clients/{c1}/devices")).json() == []

        defects = (await tech.get("/api/v1/clients/routing-defects")).json()
        assert {a["alarm_id"] for a in defects} == {"after-move", "orphan"}
        metrics = await tech.get("/metrics")
        assert 'trygg_receiver_routing_missing_total{why="no_client"}' in metrics.text

        async def hits(q: str) -> list[int]:
            return [c["id"] for c in (await op.get("/api/v1/clients", params={"q": q})).json()]

        assert await hits("bengt") == [c2]
        assert await hits("Björkvägen") == [c1]
        assert await hits("dev-9") == [c1, c2] or await hits("dev-9") == [c2, c1]  # linked now or before
        assert await hits("0701234567") == [c1]  # the daughter's phone, typed without +46 and spaces
        assert await hits("08 555 1212") == [c1]
        dup = await case.post("/api/v1/clients", json=client_body("c-1"))
        assert dup.status_code == 409 and dup.json()["code"] == "client.ref_taken"
