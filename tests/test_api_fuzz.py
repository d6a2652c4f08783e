"""No HTTP 500 from either service, whatever the request (issue 8, point 14).

The reported cases first (a database id beyond 64 bits, a lone surrogate in a login), then schemathesis against
both services' OpenAPI descriptions, with a bounded number of examples per operation: no server error, and every
status code answered is documented in the schema (``responses=`` on the routes).
"""

from __future__ import annotations

import asyncio
import shutil
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import pytest_asyncio

from devices import DeviceType
from testing.broker import Broker
from testing.harness import create_user, make_settings, prepare_stores, running_gateway, running_receiver

HUGE = "9223372036854775808"  # 2**63: beyond SQLite's and PostgreSQL's integers
EXAMPLES_PER_OPERATION = 10
SKIPPED_PATHS = ("/api/v1/auth/logout", "/api/v1/events")
# Voice calls (docs/voice.md) are fuzzed in a test of their own, so that each test stays inside its time limit.
VOICE_GATEWAY_PATHS = (
    "/api/v1/voice/calls",
    "/api/v1/voice/callback",
    "/api/v1/voice/calls/{call_id}/answer",
    "/api/v1/voice/calls/{call_id}/end",
)
VOICE_RECEIVER_PATHS = ("/api/v1/voice/rights", "/api/v1/voice/events", "/api/v1/alarms/{alarm_pk}/help-coming")
# /health answers 503 by design when the service is failing (a store probe slower than its timeout on a loaded
# machine is one); tests/test_health.py covers it.
HEALTH = "/health"


@dataclass
class Services:
    receiver: str
    gateway: str
    token: str
    intake_token: str
    workdir: Path  # schemathesis keeps a cache in its working directory: not in the repository


@pytest_asyncio.fixture
async def services(broker: Broker, tmp_path: Path) -> AsyncIterator[Services]:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s, {"dev-1": DeviceType.PENDANT})
    await create_user(s, "boss", "admin")
    async with running_receiver(s), running_gateway(s, http=True):
        async with httpx.AsyncClient(base_url=s.receiver_url) as http:
            r = await http.post("/api/v1/auth/token", json={"username": "boss", "password": "correct-horse-1"})
            r.raise_for_status()
        assert s.intake_token is not None
        token, intake = r.json()["access_token"], s.intake_token.get_secret_value()
        yield Services(s.receiver_url, s.gateway_url, token, intake, tmp_path)


OUT_OF_RANGE = [
    ("receiver", "GET", f"/api/v1/alarms/{HUGE}"),
    ("receiver", "POST", f"/api/v1/alarms/{HUGE}/acknowledge"),
    ("receiver", "GET", "/api/v1/alarms/0"),
    ("gateway", "GET", f"/api/v1/consents/{HUGE}"),
    ("gateway", "PATCH", f"/api/v1/consents/{HUGE}"),
    ("gateway", "GET", f"/api/v1/checkins/{HUGE}"),
    ("gateway", "POST", f"/api/v1/checkins/{HUGE}/outcome"),
    ("gateway", "GET", "/api/v1/checkins/2147483648"),
]
BAD_TEXT = [
    b'{"username": "\\ud800", "password": "x"}',
    b'{"username": "boss", "password": "\\udfff-lone"}',
    b'{"username": "bo\\u0000ss", "password": "x"}',
    b'{"\\ud800": 1, "username": "boss", "password": "x"}',
    b'{"username": "\xff\xfe", "password": "x"}',  # not UTF-8 at all
]


async def test_reported_cases_answer_4xx(services: Services) -> None:
    """Ids out of range are 422 (in range but unknown: 404); text no database stores is 422, a real pair is fine."""
    auth = {"Authorization": f"Bearer {services.token}"}
    async with httpx.AsyncClient(headers=auth) as http:
        for service, method, path in OUT_OF_RANGE:
            base = services.receiver if service == "receiver" else services.gateway
            r = await http.request(method, f"{base}{path}", json={} if method != "GET" else None)
            assert r.status_code == 422, (path, r.text)
        assert (await http.get(f"{services.receiver}/api/v1/alarms/2147483647")).status_code == 404
    async with httpx.AsyncClient(base_url=services.receiver, headers={"content-type": "application/json"}) as http:
        for body in BAD_TEXT:
            r = await http.post("/api/v1/auth/token", content=body)
            assert r.status_code == 422 and r.json()["code"] == "request.bad_text", (body, r.text)
        emoji = await http.post("/api/v1/auth/token", content=b'{"username": "\\ud83d\\ude00", "password": "x"}')
        assert emoji.status_code == 401 and emoji.json()["code"] == "auth.bad_credentials", emoji.text


async def test_nul_in_a_query_is_422(services: Services) -> None:
    async with httpx.AsyncClient(base_url=services.gateway, headers={"Authorization": f"Bearer {services.token}"}) as h:
        r = await h.get("/api/v1/checkins", params={"client_ref": "a\x00b"})
    assert r.status_code == 422 and r.json()["code"] == "request.bad_text"


def _st() -> str:
    found = shutil.which("st") or str(Path(sys.executable).with_name("st"))
    assert Path(found).exists(), "schemathesis' command `st` is missing (pip install -e '.[dev]')"
    return found


async def _fuzz(workdir: Path, base_url: str, bearer: str, *paths: str, include: bool = False) -> tuple[int, str]:
    """schemathesis' own runner (examples, coverage, fuzzing and stateful phases, positive and negative data),
    deterministic and bounded: no server error, no status code the schema does not document."""
    args = [_st(), "run", f"{base_url}/openapi.json", "--checks", "not_a_server_error,status_code_conformance"]
    args += ["--header", f"Authorization: Bearer {bearer}", "--max-examples", str(EXAMPLES_PER_OPERATION)]
    args += ["--generation-deterministic", "--warnings", "off", "--request-timeout", "10", "--no-color"]
    for path in paths:
        args += ["--include-path" if include else "--exclude-path", path]
    proc = await asyncio.create_subprocess_exec(
        *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT, cwd=workdir
    )
    out, _ = await asyncio.wait_for(proc.communicate(), 240)
    return int(proc.returncode or 0), out.decode(errors="replace")


@pytest.mark.timeout(600)  # three runs over some 80 operations (issue 10 added ~20) on a shared 2-core machine
async def test_schemathesis_finds_no_server_error_in_either_service(services: Services) -> None:
    runs = [
        # the receiver as an admin; the live feed never ends and a logout would end the token: both covered by
        # tests/test_sessions.py. The intake with the gateway's token, so that its bodies are validated.
        _fuzz(
            services.workdir,
            services.receiver,
            services.token,
            *SKIPPED_PATHS,
            *VOICE_RECEIVER_PATHS,
            HEALTH,
            "/api/v1/intake",
        ),
        _fuzz(services.workdir, services.receiver, services.intake_token, "/api/v1/intake", include=True),
        _fuzz(services.workdir, services.gateway, services.token, *VOICE_GATEWAY_PATHS, HEALTH),
    ]
    for code, output in [await run for run in runs]:
        assert code == 0, output[-6000:]


async def test_schemathesis_finds_no_server_error_in_voice_calls(services: Services) -> None:
    """The voice routes of both services (the receiver's events with the gateway's token, as the gateway calls)."""
    runs = [
        _fuzz(services.workdir, services.gateway, services.token, *VOICE_GATEWAY_PATHS, include=True),
        _fuzz(services.workdir, services.receiver, services.token, *VOICE_RECEIVER_PATHS, include=True),
        _fuzz(services.workdir, services.receiver, services.intake_token, "/api/v1/voice/events", include=True),
    ]
    for code, output in [await run for run in runs]:
        assert code == 0, output[-6000:]


async def test_documented_refusals_are_in_the_schema(services: Services) -> None:
    """The refusals the API answers are described (401, 403, 404, 409, 422, 429) with the agreed body."""
    async with httpx.AsyncClient() as http:
        receiver = (await http.get(f"{services.receiver}/openapi.json")).json()
        gateway = (await http.get(f"{services.gateway}/openapi.json")).json()
    login = receiver["paths"]["/api/v1/auth/token"]["post"]["responses"]
    assert {"401", "422", "429"} <= set(login)
    ack = receiver["paths"]["/api/v1/alarms/{alarm_pk}/acknowledge"]["post"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(ack)
    consent = gateway["paths"]["/api/v1/consents/{consent_id}"]["patch"]["responses"]
    assert {"401", "403", "404", "409", "422"} <= set(consent)
    assert "Problem" in receiver["components"]["schemas"] and "Problem" in gateway["components"]["schemas"]
