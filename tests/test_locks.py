"""Digital locks end to end (issue 10): a real broker, receiver and gateway, a simulated lock. The assigned patrol
unlocks and the door opening marks the alarm on site; another patrol's grant, an expired grant and a resolved alarm
are refused with their codes; every unlock, refusal and door event is in the alarm's history and the supervision
log; a jammed lock shows at once in the client's record."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Any

from devices import DeviceType
from firmware_sim.lock import SimLock
from testing.broker import Broker
from testing.harness import Api, create_user, make_settings, prepare_stores, running_gateway, running_receiver
from testing.wait import eventually
from tests.clients_support import Rig, client_body
from trygg import grants
from trygg.audit.anchor import generate_key, load_signing_key
from trygg.db import utcnow

LOCK, PENDANT = "lock-1", "pend-1"


async def test_unlock_door_open_and_refusals(tmp_path: Path, broker: Broker) -> None:
    key_file = tmp_path / "grant.pem"
    public = generate_key(key_file)
    s = make_settings(tmp_path, broker.url, lock_grant_signing_key_file=key_file, lock_grant_public_keys=[public])
    await prepare_stores(s, {LOCK: DeviceType.LOCK, PENDANT: DeviceType.PENDANT})
    for name, role in (("case", "case_officer"), ("op", "operator"), ("p1", "patrol"), ("p2", "patrol")):
        await create_user(s, name, role)
    lock = SimLock(LOCK, s)
    async with running_receiver(s), running_gateway(s, http=True):
        r = Rig(s)
        for name in ("case", "op", "p1", "p2"):
            r.api[name] = Api(s)
            await r.api[name].login(name)
        case, op, p1, p2 = (r.api[n].http for n in ("case", "op", "p1", "p2"))
        try:
            cid = (await case.post("/api/v1/clients", json=client_body("c-1"))).json()["id"]
            await case.post(f"/api/v1/clients/{cid}/devices", json={"device_id": PENDANT})
            await case.post(f"/api/v1/clients/{cid}/devices", json={"device_id": LOCK, "kind": "lock"})
            await lock.start()

            async def lock_state() -> str | None:
                locks = (await case.get(f"/api/v1/clients/{cid}")).json()["locks"]
                return locks[0]["state"] if locks else None

            def state_is(wanted: str) -> Any:
                async def check() -> bool:
                    return await lock_state() == wanted

                return check

            assert await eventually(state_is("locked"), 15)

            await r.send_alarm(PENDANT, "a1")
            pk = (await r.alarm_of(PENDANT, "a1"))["id"]
            assert (await r.api["op"].act(pk, "acknowledge")).status_code == 200
            nobody = await p1.post(f"/api/v1/alarms/{pk}/unlock")
            assert nobody.status_code == 409 and nobody.json()["code"] == "lock.not_your_alarm"
            assert (await r.api["op"].act(pk, "assign", {"patrol": "p1"})).status_code == 200

            # another patrol's grant, presented at the gateway: refused there
            grant = (await p1.post(f"/api/v1/alarms/{pk}/lock-grant")).json()
            assert grant["lock"] == LOCK
            stolen = await p2.post(f"/gw/api/v1/locks/{LOCK}/unlock", json={"grant": grant["grant"]})
            assert stolen.status_code == 403 and stolen.json()["code"] == "lock.grant_other_patrol"
            # an expired grant (signed by the receiver's key 16 minutes ago, good for 15)
            _, old = grants.issue(
                load_signing_key(key_file), alarm=pk, lock=LOCK, patrol="p1", ttl_s=900,
                now=utcnow() - timedelta(minutes=16),
            )  # fmt: skip
            expired = await p1.post(f"/gw/api/v1/locks/{LOCK}/unlock", json={"grant": old})
            assert expired.status_code == 403 and expired.json()["code"] == "lock.grant_expired"
            forged = await p1.post(f"/gw/api/v1/locks/{LOCK}/unlock", json={"grant": grant["grant"][:-4] + "AAAA"})
            assert forged.status_code == 403 and forged.json()["code"] == "lock.grant_invalid"
            assert (
                lock.commands == []
            )  # nothing reached the lock (a forged grant names no alarm it could be trusted on:
            # it is in the supervision log, not in an alarm's history)

            # the assigned patrol unlocks; the door opens: on site
            sent = await p1.post(f"/api/v1/alarms/{pk}/unlock")
            assert sent.status_code == 200, sent.text
            await asyncio.wait_for(lock.unlocked.wait(), 10)
            assert [c.command for c in lock.commands] == ["unlock"]
            assert await eventually(state_is("unlocked"), 10)
            assert lock.open_door()

            async def on_site() -> dict[str, Any] | None:
                a = (await op.get(f"/api/v1/alarms/{pk}")).json()
                return a if a["state"] == "on_site" else None

            alarm = await eventually(on_site, 10)
            codes = [e["code"] for e in alarm["events"]]
            for code in (
                "alarm.lock_refused_other_patrol",
                "alarm.lock_refused_expired",
                "alarm.lock_unlocked",
                "alarm.door_open",
                "alarm.on_site",
            ):
                assert code in codes, (code, codes)
            assert codes.index("alarm.lock_unlocked") < codes.index("alarm.door_open") < codes.index("alarm.on_site")
            assert alarm["events"][codes.index("alarm.on_site")]["actor"] == f"lock:{LOCK}"

            # resolved: the grant still in hand is refused at the gateway, a new unlock at the receiver
            assert (await r.api["op"].act(pk, "resolve", {"outcome": "helped"})).status_code == 200
            late = await p1.post(f"/gw/api/v1/locks/{LOCK}/unlock", json={"grant": grant["grant"]})
            assert late.status_code in (404, 409) and late.json()["code"] == "lock.alarm_not_open"
            again = await p1.post(f"/api/v1/alarms/{pk}/unlock")
            assert again.status_code in (404, 409)
            assert len(lock.commands) == 1

            log = (await case.get(f"/api/v1/clients/{cid}/log")).json()
            actions = [e["action"] for e in log]
            for action in ("lock.grant_issued", "lock.unlock_sent", "lock.unlock_refused", "lock.state"):
                assert action in actions, (action, actions)

            # jammed: the record says so at once (the patrol view shows the key safe then)
            lock.close_door()
            assert lock.jam()
            assert await eventually(state_is("jammed"), 10)
        finally:
            await lock.stop()
            for a in r.api.values():
                await a.close()
