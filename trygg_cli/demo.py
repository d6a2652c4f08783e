"""``trygg demo``: broker, gateway, receiver and a simulated fleet in one process, on this machine only.

Uses Mosquitto when installed (else the embedded amqtt broker), SQLite files under the data directory,
and prints the demo operator's credentials and a few commands to try.
"""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import shlex
import signal
import sys
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import structlog
from pydantic import SecretStr

from alarm_receiver.app import create_app as create_receiver_app
from alarm_receiver.auth import Role, ensure_user
from alarm_receiver.db import migrate as migrate_receiver
from devices import DeviceType
from firmware_sim.base_unit import SimBaseUnit
from firmware_sim.camera import SimCamera
from firmware_sim.device import SimDevice
from firmware_sim.fleet import Fleet, device_ids
from firmware_sim.lock import SimLock
from gateway.app import create_app as create_gateway_app
from gateway.checkin.consent import ConsentIn, Person, create_consent, list_consents, withdraw_consent
from gateway.db import migrate as migrate_gateway
from gateway.protocols.dc09.accounts import add_account, list_accounts
from gateway.registry import add_device
from trygg.audit.anchor import generate_key
from trygg.broker import LocalBroker, port_is_free
from trygg.db import engine_scope, session_factory
from trygg.serve import service_server
from trygg.settings import Settings
from trygg_cli import demo_clients
from trygg_cli.scaip import scaip_banner

log = structlog.get_logger(__name__)


def _demo_anchor(settings: Settings) -> dict[str, object]:
    """The supervision log's anchor in the data dir (docs/audit.md), unless the settings name one."""
    if settings.audit_signing_key_file is not None:
        return {}
    key = settings.data_dir / "audit-signing.pem"
    if not key.exists():
        generate_key(key)
    return {"audit_signing_key_file": key, "audit_checkpoint_file": settings.data_dir / "audit-checkpoints.jsonl"}


def _demo_broker_port(preferred: int = 18830) -> int:
    """The machine may run its own broker on 1883; the demo uses its own on a port of its own."""
    for port in range(preferred, preferred + 50):
        if port_is_free("127.0.0.1", port):
            return port
    raise RuntimeError(f"no free port in {preferred}-{preferred + 49} for the demo broker")


def _demo_dc09_port(settings: Settings, preferred: int = 18090) -> int:
    """The DC-09 receiver's port (issue 11): the configured one, else a free one from ``preferred`` on."""
    if settings.dc09_port:
        return settings.dc09_port
    return next(p for p in range(preferred, preferred + 50) if port_is_free(settings.dc09_host, p))


DEMO_DC09_UNIT, DEMO_DC09_ACCOUNT = "dc09-carephone-001", "1234"  # a plain (unencrypted) DC-09 unit to try
DEMO_CAMERA = "sim-camera-001"
DEMO_CLIENT = "demo-client-1"
# Voice: a base unit with a speaker and a microphone, paired with one pendant, whose press calls (docs/voice.md).
DEMO_UNIT = "sim-unit-001"
DEMO_UNIT_PENDANT = "sim-unit-001-p1"
DEMO_VOICE_CLIENT = "demo-client-2"
DEMO_VOICE_EVERY_S = 300.0


async def _voice_presses(unit: SimBaseUnit, stop: asyncio.Event) -> None:
    """The unit's pendant presses 30 s after the start and then every five minutes; the unit calls each time."""
    delay = 30.0
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), delay)
            return
        if unit.current is None:
            await unit.press(pendant=0)
        delay = DEMO_VOICE_EVERY_S


def _demo_consent(settings: Settings) -> ConsentIn:
    """A consent whose night window is now, with check-ins every ten minutes, so the demo has looks to take."""
    local = datetime.now(ZoneInfo(settings.timezone))
    times = [(local + timedelta(minutes=2 + 10 * i)).strftime("%H:%M") for i in range(6)]
    return ConsentIn(
        client_ref=DEMO_CLIENT,
        camera_id=DEMO_CAMERA,
        consented_by=[Person(name="Demo Client", role="client")],
        basis="demo decision",
        window_start=(local - timedelta(minutes=30)).strftime("%H:%M"),
        window_end=(local + timedelta(hours=2)).strftime("%H:%M"),
        times=times,
        privacy="blurred",
    )


async def _prepare(settings: Settings, fleet_ids: list[tuple[str, object]]) -> dict[str, str]:
    async with engine_scope(settings.gateway_database_url) as engine:
        await migrate_gateway(engine)
        async with session_factory(engine).begin() as session:
            for device_id, device_type in fleet_ids:
                await add_device(session, device_id, device_type, exist_ok=True)  # type: ignore[arg-type]
            await add_device(session, DEMO_CAMERA, DeviceType.CAMERA, client_ref=DEMO_CLIENT, exist_ok=True)
            await add_device(session, DEMO_DC09_UNIT, DeviceType.BASE_UNIT, exist_ok=True)
            if not await list_accounts(session, DEMO_DC09_UNIT):
                await add_account(session, DEMO_DC09_ACCOUNT, DEMO_DC09_UNIT)
            for voice_id, voice_type in ((DEMO_UNIT, DeviceType.BASE_UNIT), (DEMO_UNIT_PENDANT, DeviceType.PENDANT)):
                await add_device(session, voice_id, voice_type, client_ref=DEMO_VOICE_CLIENT, exist_ok=True)
            # A fresh consent each run, so its check-in times lie ahead of this run (not already missed).
            for old in await list_consents(session, client_ref=DEMO_CLIENT):
                await withdraw_consent(session, old.id, actor="demo", reason="demo restarted")
            await create_consent(session, _demo_consent(settings), actor="demo", default_tz=settings.timezone)
    roles = {
        "operator": Role.OPERATOR,
        "patrol": Role.PATROL,
        "technician": Role.TECHNICIAN,
        "case_officer": Role.CASE_OFFICER,
    }
    creds = {name: secrets.token_urlsafe(9) for name in roles}
    async with engine_scope(settings.receiver_database_url) as engine:
        await migrate_receiver(engine)
        async with session_factory(engine).begin() as session:
            for name, role in roles.items():
                await ensure_user(session, name, creds[name], role)
    return creds


def trygg_command() -> str:
    """The ``trygg`` of this installation, as a path that works pasted into any shell (``.venv/bin`` is usually
    not on PATH): the script next to this Python, else this Python running the module."""
    script = Path(sys.executable).parent / "trygg"
    if script.is_file():
        return shlex.quote(str(script.absolute()))
    return f"{shlex.quote(sys.executable)} -m trygg_cli"


def press_command(settings: Settings, device_id: str = "sim-pendant-001", alarm_type: str = "fall") -> str:
    """A one-press command for this demo that works as pasted: the broker, its protocol and the topic root."""
    env = [f"TRYGG_MQTT_URL={shlex.quote(settings.mqtt_url)}", f"TRYGG_MQTT_PROTOCOL={settings.mqtt_protocol}"]
    if settings.topic_root != Settings.model_fields["topic_root"].default:
        env.append(f"TRYGG_TOPIC_ROOT={shlex.quote(settings.topic_root)}")
    return f"{' '.join(env)} {trygg_command()} sim press {device_id} --type {alarm_type}"


def _banner(
    settings: Settings,
    broker: LocalBroker,
    creds: dict[str, str],
    *,
    devices: int,
    press_every_s: float,
    clear_after_s: float,
) -> str:
    r = settings.receiver_url
    if press_every_s:
        presses = f"one press every {press_every_s:g} s across the fleet, each device in turn"
        if clear_after_s:
            presses += f"; a press nobody acknowledged is cancelled on its device after {clear_after_s:g} s"
    else:
        presses = "no automatic presses"
    return f"""
  Trygg demo is running (Ctrl-C stops it).
    broker    {broker.url} ({broker.kind})
    gateway   http://{settings.gateway_http_host}:{settings.gateway_http_port}/health   (metrics: /metrics)
    receiver  {r}/docs  (OpenAPI)
    console   {r}/console/
    users     operator / {creds["operator"]}    patrol / {creds["patrol"]}
              technician / {creds["technician"]}    case_officer / {creds["case_officer"]}
    devices   {devices} simulated alarm devices: {presses}
    camera    {DEMO_CAMERA} (client {DEMO_CLIENT}): check-ins due every 10 minutes from 2 minutes on
    dc09      SIA DC-09, TCP and UDP, {settings.dc09_host}:{settings.dc09_port}
              account {DEMO_DC09_ACCOUNT} is {DEMO_DC09_UNIT} (plain; `trygg dc09 add` registers more)
    voice     {DEMO_UNIT} (client {DEMO_VOICE_CLIENT}): its pendant presses after 30 s, then every 5 minutes, and
              the unit calls: answer in the console (it plays a 1 kHz tone and measures what it hears)

  Try:
    TOKEN=$(curl -s -X POST {r}/api/v1/auth/token -H 'content-type: application/json' \\
      -d '{{"username":"operator","password":"{creds["operator"]}"}}' \\
      | python3 -c 'import sys,json;print(json.load(sys.stdin)["access_token"])')
    curl -s -H "Authorization: Bearer $TOKEN" {r}/api/v1/alarms | python3 -m json.tool
    curl -N -H "Authorization: Bearer $TOKEN" {r}/api/v1/events
    curl -s -X POST -H "Authorization: Bearer $TOKEN" -H 'content-type: application/json' \\
      -d '{{}}' {r}/api/v1/alarms/1/acknowledge
    {press_command(settings)}
"""


async def run_demo(
    settings: Settings,
    *,
    devices: int = 6,
    press_every_s: float = 20.0,
    clear_after_s: float = 120.0,
    prefer_mosquitto: bool = True,
    stop: asyncio.Event | None = None,
) -> None:
    """``press_every_s``: one automatic press that often across the fleet (0: none); ``clear_after_s``: such a
    press no operator acknowledged is cancelled on its device after that long (0: never), so the queue does not
    fill up with escalated presses while nobody is at the console."""
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)

    settings.data_dir.mkdir(parents=True, exist_ok=True)
    broker = LocalBroker(settings.data_dir, _demo_broker_port(), prefer_mosquitto=prefer_mosquitto)
    await broker.start()
    settings = settings.model_copy(
        update={
            "mqtt_url": broker.url,
            "mqtt_protocol": "5" if broker.kind == "mosquitto" else "3.1.1",
            "intake_token": SecretStr(secrets.token_urlsafe(32)),
            "webrtc_host_addresses": settings.webrtc_host_addresses or ["127.0.0.1"],  # one machine: loopback
            **_demo_anchor(settings),
            "scaip_port": 0 if settings.scaip_port is None else settings.scaip_port,  # SCAIP units, on a free port
            "dc09_port": _demo_dc09_port(settings),
            **demo_clients.grant_keys(settings),
        }
    )
    fleet_ids = device_ids(devices)
    creds = await _prepare(settings, list(fleet_ids))
    await demo_clients.seed(
        settings,
        fleet_ids,
        DEMO_CAMERA,
        DEMO_CLIENT,
        owned={DEMO_UNIT: DEMO_VOICE_CLIENT, DEMO_UNIT_PENDANT: DEMO_VOICE_CLIENT, DEMO_DC09_UNIT: "demo-client-3"},
    )  # clients in Ekby (issue 10)
    # handle_signals=False: Ctrl-C is ours, everything stops in order below
    receiver = service_server(
        create_receiver_app(settings, run_migrations=False), settings, "receiver", handle_signals=False
    )
    gateway_app = create_gateway_app(settings)
    gateway = service_server(gateway_app, settings, "gateway", handle_signals=False)
    tasks = [asyncio.create_task(receiver.serve()), asyncio.create_task(gateway.serve())]
    fleet = Fleet(settings, devices, press_every_s=press_every_s or None, cancel_after_s=clear_after_s or None)
    camera = SimCamera(DEMO_CAMERA, settings, scenario="in_bed")
    pendant = SimDevice(DEMO_UNIT_PENDANT, DeviceType.PENDANT, settings)
    unit = SimBaseUnit(DEMO_UNIT, settings, pendants=[pendant])
    lock = SimLock(demo_clients.DEMO_LOCK, settings)
    try:
        while not (receiver.started and gateway.started):
            for t in tasks:
                if t.done():
                    t.result()
                    raise RuntimeError("a service stopped during start-up (is its port taken?)")
            await asyncio.sleep(0.05)
        await fleet.start()
        await camera.start()
        await unit.start()
        tasks.append(asyncio.create_task(_voice_presses(unit, stop)))
        await lock.start()
        banner = _banner(
            settings, broker, creds, devices=devices, press_every_s=press_every_s, clear_after_s=clear_after_s
        )
        print(banner + scaip_banner(gateway_app), flush=True)
        await stop.wait()
    finally:
        log.info("demo stopping")
        await unit.stop()
        await lock.stop()
        await camera.stop()
        await fleet.stop()
        # The gateway first: its forwarder must not post to a receiver that is already going away.
        gateway.should_exit = True
        await asyncio.gather(tasks[1], return_exceptions=True)
        receiver.should_exit = True
        await asyncio.gather(*tasks, return_exceptions=True)
        await broker.stop()
