"""Client register, part two: CSV import (dry run, every bad row named, all or nothing), export round trip, the
CLI, and routing to the patrol on shift for the client's area."""

from __future__ import annotations

import asyncio
import subprocess
import sys
from pathlib import Path
from typing import Any

from testing.broker import Broker
from testing.harness import settings_env
from tests.clients_support import client_body, rig

GOOD = (
    "ref;name;street;postcode;town;area;health_notes;key_safe_code;hard_of_hearing;devices;"
    "contact1_name;contact1_phone;contact1_has_key\n"
    'k-1;Greta Holm;Lindgatan 4;123 46;Ekby;norr;Astma;1234;ja;"pend-1;lock:lock-1";Olle Holm;070-111 22 33;ja\n'
    "k-2;Sven Berg;Aspvägen 9;123 47;Ekby;syd;;;nej;;;;\n"
)
BAD = (
    "ref,name,street,lat,contact1_name,contact1_phone,interpreter\n"
    "b-1,Ingrid Falk,Storgatan 1,59.3,Lars Falk,070-123 45 67,nej\n"
    "b-2,Nils Ek,Storgatan 2,59.3,Eva Ek,telefon saknas,nej\n"
    "b-3,,Storgatan 3,norr,,,kanske\n"
)


async def test_import_is_all_or_nothing_and_names_every_bad_row(tmp_path: Path, broker: Broker) -> None:
    async with rig(tmp_path, broker) as r:
        case, op = r.api["case"].http, r.api["op"].http

        async def post(text: str, **params: bool) -> tuple[int, Any]:
            resp = await case.post("/api/v1/clients/import", content=text.encode(), params=params)
            return resp.status_code, resp.json()

        status, report = await post(BAD, dry_run=True)
        assert status == 200 and report["imported"] is False
        errors = {(e["row"], e["column"], e["reason"]) for e in report["errors"]}
        assert errors == {
            (3, "contact1_phone", "bad_phone"),
            (4, "name", "required"),
            (4, "lat", "not_a_number"),
            (4, "interpreter", "not_yes_no"),
        }
        status, refused = await post(BAD)
        assert status == 422 and refused["code"] == "client.import_bad_rows"
        assert {(e["row"], e["column"]) for e in refused["params"]["errors"]} == {(r_, c) for r_, c, _ in errors}
        assert "telefon saknas" not in str(refused)  # reasons, never the values
        assert (await op.get("/api/v1/clients", params={"q": "Ingrid"})).json() == []  # the good row was not imported

        status, report = await post(GOOD, dry_run=True)
        assert (status, report["created"], report["imported"]) == (200, 2, False)
        assert (await op.get("/api/v1/clients", params={"q": "Ekby"})).json() == []
        status, report = await post(GOOD)
        assert (status, report["created"], report["devices_linked"], report["imported"]) == (200, 2, 2, True)
        greta = (await op.get("/api/v1/clients", params={"q": "070 111 22 33"})).json()
        assert [c["name"] for c in greta] == ["Greta Holm"] and greta[0]["devices"] == ["pend-1", "lock-1"]
        full = (await case.get(f"/api/v1/clients/{greta[0]['id']}")).json()
        assert full["health_notes"] == "Astma" and full["hard_of_hearing"] is True
        assert full["contacts"] == [
            {"name": "Olle Holm", "relation": None, "phone": "070-111 22 33", "has_key": True, "call_at_night": True}
        ]
        assert {d["kind"] for d in full["devices"]} == {"device", "lock"}

        exported = await case.get("/api/v1/clients/export")
        assert exported.status_code == 200 and exported.headers["content-type"].startswith("text/csv")
        assert (await op.get("/api/v1/clients/export")).status_code == 403
        status, again = await post(exported.text)
        assert (status, again["created"], again["updated"]) == (200, 0, 2)
        assert (await case.get(f"/api/v1/clients/{greta[0]['id']}")).json()["contacts"] == full["contacts"]

        # the command says the same, and exits 1
        bad_file = tmp_path / "bad.csv"
        bad_file.write_text(BAD, encoding="utf-8")
        proc = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-m", "trygg_cli", "clients", "import", str(bad_file), "--dry-run"],
            env=settings_env(r.settings),
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert proc.returncode == 1, proc.stderr
        assert "row 3, column contact1_phone: bad_phone" in proc.stderr
        assert "nothing imported" in proc.stderr


async def test_routing_proposes_the_patrol_on_shift_for_the_area(tmp_path: Path, broker: Broker) -> None:
    async with rig(tmp_path, broker) as r:
        case, op, p1, p2 = (r.api[n].http for n in ("case", "op", "p1", "p2"))
        for code, name in (("norr", "Ekby norra"), ("syd", "Ekby södra")):
            assert (await case.put(f"/api/v1/areas/{code}", json={"name": name})).status_code == 200
        cid = (await case.post("/api/v1/clients", json=client_body("c-1"))).json()["id"]  # area norr
        await case.post(f"/api/v1/clients/{cid}/devices", json={"device_id": "dev-1"})
        await r.send_alarm("dev-1", "a1")
        await r.send_alarm("dev-1", "a2", "fall")  # another type: its own item (the same would be collapsed)
        pk = (await r.alarm_of("dev-1", "a1"))["id"]
        other = (await r.alarm_of("dev-1", "a2"))["id"]

        refused = await p1.post("/api/v1/roster/sign-on", json={"areas": ["nowhere"]})
        assert refused.status_code == 422 and refused.json()["code"] == "routing.unknown_area"
        assert [s["area"] for s in (await p1.post("/api/v1/roster/sign-on", json={"areas": ["syd"]})).json()] == ["syd"]
        assert [s["area"] for s in (await p2.post("/api/v1/roster/sign-on", json={"areas": ["norr"]})).json()] == [
            "norr"
        ]
        await r.api["op"].act(other, "acknowledge")
        await r.api["op"].act(other, "assign", {"patrol": "p2"})  # p2 already holds one alarm

        proposed = (await op.get(f"/api/v1/alarms/{pk}/proposals")).json()
        assert [(p["username"], p["on_shift_here"], p["load"]) for p in proposed] == [
            ("p2", True, 1),
            ("p1", False, 0),
        ]
        assert proposed[1]["areas"] == ["syd"]
        assert (await p1.get(f"/api/v1/alarms/{pk}/proposals")).status_code == 403

        assert (await p2.post("/api/v1/roster/sign-off", json={})).json() == []
        proposed = (await op.get(f"/api/v1/alarms/{pk}/proposals")).json()
        assert [p["username"] for p in proposed] == ["p1", "p2"]  # on shift elsewhere before off shift
        roster = (await op.get("/api/v1/roster")).json()
        assert roster == [{"username": "p1", "area": "syd"}]
