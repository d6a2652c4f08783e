"""Per-device broker credentials and ACL (issue "device fleet"), against a real Mosquitto.

The broker uses the password file and ACL that Trygg writes from its database. Negatives ("device A never
receives B's message") are proven with a positive control on the same connection instead of sleeps: the
broker handles one connection's packets in order, so once the allowed message arrives, the forbidden one,
sent before it, would already have arrived.
"""

from __future__ import annotations

import asyncio
import base64
import shutil
import signal
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gmqtt  # type: ignore[import-untyped,unused-ignore]
import pytest
import pytest_asyncio
from gmqtt import MQTTConnectError
from typer.testing import CliRunner

from devices import DeviceType
from gateway.db import migrate as migrate_gateway
from gateway.provisioning import (
    ProvisioningError,
    ensure_service_account,
    issue_device_credentials,
    mosquitto_hash,
    render_acl,
    render_password_file,
    verify_mosquitto_hash,
    write_broker_auth,
)
from gateway.registry import add_device, retire_device
from testing.broker import Broker, free_port, mosquitto_binary, wait_port
from testing.wait import eventually
from trygg.db import transaction
from trygg.settings import get_settings
from trygg_cli.broker import broker_app

ROOT = "trygg/v1"
GATEWAY, RECEIVER = "trygg-gateway", "trygg-receiver"
DEVICES = ("dev-a", "dev-b", "dev-c")
TIMEOUT = 10.0
REPO = Path(__file__).resolve().parent.parent
# Mosquitto 2 answers a refused MQTT 5 CONNECT with 0x86 (bad user name or password) or 0x87 (not authorized).
REFUSED = {134, 135}


def dev(device_id: str, kind: str) -> str:
    return f"{ROOT}/devices/{device_id}/{kind}"


# --- an MQTT peer that records what it receives ------------------------------------------------------------
class Peer:
    """A gmqtt client (MQTT 5) whose received messages land in a queue, in arrival order."""

    def __init__(self, name: str) -> None:
        self.client = gmqtt.Client(f"{name}-{uuid.uuid4().hex[:8]}", clean_session=True)
        self.client.set_config({"reconnect_retries": 0, "reconnect_delay": 60})
        self.inbox: asyncio.Queue[tuple[str, bytes]] = asyncio.Queue()
        self._subacks: dict[int, asyncio.Future[list[int]]] = {}
        self.disconnected = asyncio.Event()
        self.client.on_message = self._on_message
        self.client.on_subscribe = self._on_subscribe
        self.client.on_disconnect = self._on_disconnect

    async def _on_message(self, _c: Any, topic: str, payload: bytes, _qos: int, _props: Any) -> int:
        self.inbox.put_nowait((topic, bytes(payload)))
        return 0

    def _on_subscribe(self, _c: Any, mid: int, granted: Any, _props: Any) -> None:
        future = self._subacks.pop(mid, None)
        if future is not None and not future.done():
            future.set_result([int(code) for code in granted])

    def _on_disconnect(self, *_args: Any, **_kwargs: Any) -> None:
        self.disconnected.set()

    async def connect(
        self, port: int, username: str | None, password: str | None, *, tls: ssl.SSLContext | None = None
    ) -> None:
        if username is not None:
            self.client.set_auth_credentials(username, password)
        await asyncio.wait_for(self.client.connect("127.0.0.1", port, ssl=tls or False, keepalive=30), TIMEOUT)

    async def subscribe(self, *filters: str) -> list[int]:
        """Subscribe and wait for the SUBACK; returns its reason codes (QoS granted, or >= 0x80 refused)."""
        future: asyncio.Future[list[int]] = asyncio.get_running_loop().create_future()
        mid = self.client.subscribe([gmqtt.Subscription(f, qos=1) for f in filters])
        self._subacks[mid] = future
        return await asyncio.wait_for(future, TIMEOUT)

    def publish(self, topic: str, payload: bytes) -> None:
        self.client.publish(topic, payload, qos=1)

    async def next(self) -> tuple[str, bytes]:
        return await asyncio.wait_for(self.inbox.get(), TIMEOUT)

    async def close(self) -> None:
        if self.client.is_connected:
            await self.client.disconnect()


PeerFactory = Callable[[str], Peer]


@pytest_asyncio.fixture
async def peers() -> AsyncIterator[PeerFactory]:
    """Makes peers and disconnects all of them at the end of the test."""
    made: list[Peer] = []

    def make(name: str) -> Peer:
        made.append(Peer(name))
        return made[-1]

    yield make
    for peer in made:
        await peer.close()


# --- the fleet: database, auth files, broker ---------------------------------------------------------------
@dataclass
class Fleet:
    db_url: str
    password_file: Path  # the devices'
    service_password_file: Path
    acl_file: Path
    passwords: dict[str, str] = field(default_factory=dict)

    async def write_auth(self) -> None:
        async with transaction(self.db_url, migrate_gateway) as session:
            await write_broker_auth(session, self.password_file, self.service_password_file, self.acl_file, ROOT)

    def broker(self, workdir: Path, extra_config: str = "") -> Broker:
        return Broker(
            workdir=workdir,
            password_file=self.service_password_file,
            device_password_file=self.password_file,
            acl_file=self.acl_file,
            extra_config=extra_config,
        )


@pytest_asyncio.fixture
async def fleet(tmp_path: Path) -> Fleet:
    """Three registered devices with credentials, the two service accounts, and the files written."""
    auth = tmp_path / "auth"
    f = Fleet(
        f"sqlite+aiosqlite:///{tmp_path}/gw.db", auth / "device-passwords", auth / "service-passwords", auth / "acl"
    )
    async with transaction(f.db_url, migrate_gateway) as session:
        for device_id in DEVICES:
            await add_device(session, device_id, DeviceType.PENDANT)
            f.passwords[device_id] = await issue_device_credentials(session, device_id)
        for username, role in ((GATEWAY, "gateway"), (RECEIVER, "receiver")):
            f.passwords[username] = f"{role}-secret"
            await ensure_service_account(session, username, role, f.passwords[username])
    await f.write_auth()
    return f


@pytest.fixture
def auth_broker(fleet: Fleet, tmp_path: Path) -> Iterator[Broker]:
    broker = fleet.broker(tmp_path / "mosquitto")
    broker.start()
    try:
        yield broker
    finally:
        broker.stop()


def port_for(broker: Broker, username: str) -> int:
    """Services log in on the service listener, devices on the device listener."""
    return broker.port if username in (GATEWAY, RECEIVER) else broker.device_port


async def connected(make: PeerFactory, broker: Broker, fleet: Fleet, username: str) -> Peer:
    peer = make(username)
    await peer.connect(port_for(broker, username), username, fleet.passwords[username])
    return peer


# --- hashing ------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("iterations", [101, 1000])
def test_hash_is_the_one_mosquitto_passwd_writes(tmp_path: Path, iterations: int) -> None:
    path = tmp_path / "pw"
    subprocess.run(
        ["mosquitto_passwd", "-c", "-b", "-I", str(iterations), str(path), "alice", "s3cret:é"],
        check=True,
        capture_output=True,
    )
    written = path.read_text().strip().split(":", 1)[1]
    salt = base64.b64decode(written.split("$")[3])
    assert mosquitto_hash("s3cret:é", salt=salt, iterations=iterations) == written
    assert verify_mosquitto_hash("s3cret:é", written)
    assert not verify_mosquitto_hash("s3cret", written)
    ours = mosquitto_hash("x")
    assert ours.startswith("$7$101$") and len(base64.b64decode(ours.split("$")[3])) == 12
    assert verify_mosquitto_hash("x", ours) and not verify_mosquitto_hash("x", "$6$bad")


# --- (i) own subtree ------------------------------------------------------------------------------------------
async def test_device_round_trip_in_its_own_subtree(fleet: Fleet, auth_broker: Broker, peers: PeerFactory) -> None:
    a = await connected(peers, auth_broker, fleet, "dev-a")
    assert await a.subscribe(dev("dev-a", "#")) == [1]
    a.publish(dev("dev-a", "heartbeat"), b"hb")
    assert await a.next() == (dev("dev-a", "heartbeat"), b"hb")


# --- (ii) cannot publish as another device ----------------------------------------------------------------
async def test_device_cannot_publish_as_another(fleet: Fleet, auth_broker: Broker, peers: PeerFactory) -> None:
    gateway = await connected(peers, auth_broker, fleet, GATEWAY)
    assert await gateway.subscribe(f"{ROOT}/devices/+/alarm") == [1]
    a = await connected(peers, auth_broker, fleet, "dev-a")
    a.publish(dev("dev-b", "alarm"), b"forged")
    a.publish(dev("dev-a", "alarm"), b"own")
    assert await gateway.next() == (dev("dev-a", "alarm"), b"own")
    assert gateway.inbox.empty()


# --- (iii) cannot read another device's topics ------------------------------------------------------------
async def test_device_cannot_read_another(fleet: Fleet, auth_broker: Broker, peers: PeerFactory) -> None:
    a = await connected(peers, auth_broker, fleet, "dev-a")
    granted = await a.subscribe(dev("dev-b", "alarm/ack"), dev("dev-a", "alarm/ack"))
    assert granted[1] == 1 and granted[0] in (1, 0x87)  # Mosquitto 2.0.11 grants it and filters on delivery
    gateway = await connected(peers, auth_broker, fleet, GATEWAY)
    gateway.publish(dev("dev-b", "alarm/ack"), b"for b")
    gateway.publish(dev("dev-a", "alarm/ack"), b"for a")
    assert await a.next() == (dev("dev-a", "alarm/ack"), b"for a")
    assert a.inbox.empty()


async def test_device_cannot_read_everything(fleet: Fleet, auth_broker: Broker, peers: PeerFactory) -> None:
    a = await connected(peers, auth_broker, fleet, "dev-a")
    await a.subscribe(f"{ROOT}/#", "#")
    await a.subscribe(dev("dev-a", "status"))
    gateway = await connected(peers, auth_broker, fleet, GATEWAY)
    await gateway.subscribe(dev("dev-b", "status"))
    b = await connected(peers, auth_broker, fleet, "dev-b")
    b.publish(dev("dev-b", "status"), b"online")
    # Once the gateway has it, the broker has routed b's message (to a as well, were a allowed to read it).
    assert await gateway.next() == (dev("dev-b", "status"), b"online")
    a.publish(dev("dev-a", "status"), b"mine")
    topic, payload = await a.next()
    while (topic, payload) != (dev("dev-a", "status"), b"mine"):
        assert topic.startswith(dev("dev-a", "")), f"dev-a read {topic}"
        topic, payload = await a.next()


# --- (iv) wrong password ------------------------------------------------------------------------------------
@pytest.mark.parametrize(("username", "password"), [("dev-a", "wrong"), ("dev-a", ""), ("nobody", "x")])
async def test_wrong_password_is_refused(
    fleet: Fleet, auth_broker: Broker, peers: PeerFactory, username: str, password: str
) -> None:
    with pytest.raises(MQTTConnectError) as refused:
        await peers(username).connect(port_for(auth_broker, username), username, password)
    assert refused.value._code in REFUSED


# --- (v) retired devices and rotation -------------------------------------------------------------------------
async def refused_eventually(make: PeerFactory, broker: Broker, username: str, password: str) -> int:
    """Connect again and again until the broker refuses; the refusal's reason code."""

    async def refused() -> int | None:
        peer = make(username)
        try:
            await peer.connect(port_for(broker, username), username, password)
        except MQTTConnectError as exc:
            return int(exc._code)
        await peer.close()
        return None

    return await eventually(refused, TIMEOUT, interval=0)


async def reload(broker: Broker, how: str) -> None:
    assert broker.proc is not None
    if how == "sighup":
        broker.proc.send_signal(signal.SIGHUP)
    else:
        await asyncio.to_thread(broker.restart)


@pytest.mark.parametrize("how", ["sighup", "restart"])
async def test_retired_device_is_refused(fleet: Fleet, auth_broker: Broker, peers: PeerFactory, how: str) -> None:
    c = await connected(peers, auth_broker, fleet, "dev-c")
    async with transaction(fleet.db_url, migrate_gateway) as session:
        await retire_device(session, "dev-c")
    await fleet.write_auth()
    await reload(auth_broker, how)
    # Mosquitto re-checks connected clients on reload: a retired device is dropped at once, not only refused.
    await asyncio.wait_for(c.disconnected.wait(), TIMEOUT)
    assert await refused_eventually(peers, auth_broker, "dev-c", fleet.passwords["dev-c"]) in REFUSED
    await connected(peers, auth_broker, fleet, "dev-a")  # everyone else still gets in
    with pytest.raises(ProvisioningError):
        async with transaction(fleet.db_url, migrate_gateway) as session:
            await issue_device_credentials(session, "dev-c")


async def test_rotation_replaces_the_password(fleet: Fleet, auth_broker: Broker, peers: PeerFactory) -> None:
    old = fleet.passwords["dev-b"]
    b = await connected(peers, auth_broker, fleet, "dev-b")
    async with transaction(fleet.db_url, migrate_gateway) as session:
        fleet.passwords["dev-b"] = await issue_device_credentials(session, "dev-b")
    assert fleet.passwords["dev-b"] != old
    await fleet.write_auth()
    await reload(auth_broker, "sighup")
    await asyncio.wait_for(b.disconnected.wait(), TIMEOUT)  # logged in with the old password
    assert await refused_eventually(peers, auth_broker, "dev-b", old) in REFUSED
    await connected(peers, auth_broker, fleet, "dev-b")


# --- (vi) the service accounts -------------------------------------------------------------------------------
async def test_gateway_and_receiver_rights(fleet: Fleet, auth_broker: Broker, peers: PeerFactory) -> None:
    a = await connected(peers, auth_broker, fleet, "dev-a")
    await a.subscribe(dev("dev-a", "#"))
    gateway = await connected(peers, auth_broker, fleet, GATEWAY)
    await gateway.subscribe(f"{ROOT}/devices/#")
    receiver = await connected(peers, auth_broker, fleet, RECEIVER)
    await receiver.subscribe(f"{ROOT}/devices/#", f"{ROOT}/receiver/#")

    # The gateway reads every device.
    a.publish(dev("dev-a", "alarm"), b"help")
    assert await gateway.next() == (dev("dev-a", "alarm"), b"help")
    assert await a.next() == (dev("dev-a", "alarm"), b"help")

    # It answers, configures and starts/ends camera check-ins and voice calls; it cannot forge a device's own
    # messages (an alarm, a unit's call).
    gateway.publish(dev("dev-a", "alarm"), b"forged by gateway")
    gateway.publish(dev("dev-a", "voice/call"), b"forged by gateway")
    kinds = ("alarm/ack", "config", "camera/request", "camera/end", "voice/request", "voice/end")
    for kind in kinds:
        gateway.publish(dev("dev-a", kind), kind.encode())
    for kind in kinds:
        assert await a.next() == (dev("dev-a", kind), kind.encode())

    # The receiver says "acknowledged" but cannot configure a device.
    receiver.publish(dev("dev-a", "config"), b"forged by receiver")
    receiver.publish(dev("dev-a", "alarm/ack"), b"acknowledged")
    assert await a.next() == (dev("dev-a", "alarm/ack"), b"acknowledged")
    assert a.inbox.empty()

    # The receiver reads no device topic: dev-a's alarm was routed before the gateway saw it, the receiver's
    # own ack before its probe; if either had reached the receiver, it would come before the probe.
    receiver.publish(f"{ROOT}/receiver/probe", b"probe")
    assert await receiver.next() == (f"{ROOT}/receiver/probe", b"probe")
    assert receiver.inbox.empty()


# --- (vii) TLS ---------------------------------------------------------------------------------------------------
async def test_tls_listener_round_trip(fleet: Fleet, tmp_path: Path, peers: PeerFactory) -> None:
    certs = tmp_path / "certs"
    await asyncio.to_thread(make_test_ca, certs)
    tls_port = free_port()
    # per_listener_settings is true: the TLS device listener names its own password file and ACL.
    extra = (
        f"listener {tls_port} 127.0.0.1\n"
        f"allow_anonymous false\nuse_username_as_clientid true\n"
        f"password_file {fleet.password_file}\nacl_file {fleet.acl_file}\n"
        f"cafile {certs / 'ca.crt'}\ncertfile {certs / 'server.crt'}\nkeyfile {certs / 'server.key'}\n"
        "tls_version tlsv1.2\n"
    )
    broker = fleet.broker(tmp_path / "mosquitto-tls", extra)
    broker.start()
    try:
        context = ssl.create_default_context(cafile=str(certs / "ca.crt"))
        a = peers("dev-a")
        await a.connect(tls_port, "dev-a", fleet.passwords["dev-a"], tls=context)
        await a.subscribe(dev("dev-a", "alarm/ack"))
        a.publish(dev("dev-a", "alarm/ack"), b"over tls")
        assert await a.next() == (dev("dev-a", "alarm/ack"), b"over tls")
        with pytest.raises(MQTTConnectError):
            await peers("dev-a").connect(tls_port, "dev-a", "wrong", tls=context)
    finally:
        await asyncio.to_thread(broker.stop)


async def test_shipped_mosquitto_conf_works(fleet: Fleet, tmp_path: Path, peers: PeerFactory) -> None:
    """config/mosquitto/mosquitto.conf as shipped, with only its paths and ports moved into the test."""
    confdir, plain, tls = tmp_path / "shipped", free_port(), free_port()
    await asyncio.to_thread(make_test_ca, confdir / "certs")
    shutil.copy(fleet.password_file, confdir / "device-passwords")
    shutil.copy(fleet.service_password_file, confdir / "service-passwords")
    shutil.copy(fleet.acl_file, confdir / "acl")
    text = (REPO / "config" / "mosquitto" / "mosquitto.conf").read_text()
    for old, new in {
        "/mosquitto/config/": f"{confdir}/",
        "/mosquitto/data/": f"{tmp_path}/data/",
        "listener 1883 127.0.0.1": f"listener {plain} 127.0.0.1",
        "listener 8883 0.0.0.0": f"listener {tls} 127.0.0.1",
    }.items():
        assert old in text
        text = text.replace(old, new)
    (confdir / "mosquitto.conf").write_text(text + "user root\n")
    (tmp_path / "data").mkdir()
    log = (tmp_path / "shipped.log").open("wb")
    proc = await asyncio.create_subprocess_exec(
        mosquitto_binary(), "-c", str(confdir / "mosquitto.conf"), stdout=log, stderr=log
    )
    try:
        await asyncio.to_thread(wait_port, tls)
        context = ssl.create_default_context(cafile=str(confdir / "certs" / "ca.crt"))
        a = peers("dev-a")
        await a.connect(tls, "dev-a", fleet.passwords["dev-a"], tls=context)
        await a.subscribe(dev("dev-a", "config"))
        gateway = await connected(peers, Broker(workdir=tmp_path, port=plain), fleet, GATEWAY)
        gateway.publish(dev("dev-a", "config"), b"{}")
        assert await a.next() == (dev("dev-a", "config"), b"{}")
        with pytest.raises(MQTTConnectError):
            await peers("anonymous").connect(plain, None, None)
    finally:
        proc.terminate()
        await asyncio.wait_for(proc.wait(), TIMEOUT)
        log.close()


def make_test_ca(directory: Path, *options: str) -> None:
    subprocess.run([str(REPO / "scripts" / "make-test-ca"), *options, str(directory)], check=True, capture_output=True)


def test_make_test_ca_keeps_an_existing_ca(tmp_path: Path) -> None:
    make_test_ca(tmp_path)
    ca = (tmp_path / "ca.crt").read_bytes()
    make_test_ca(tmp_path)
    assert (tmp_path / "ca.crt").read_bytes() == ca
    make_test_ca(tmp_path, "--force")
    assert (tmp_path / "ca.crt").read_bytes() != ca
    subprocess.run(["openssl", "verify", "-CAfile", str(tmp_path / "ca.crt"), str(tmp_path / "server.crt")], check=True)


# --- files and refusals without a broker ---------------------------------------------------------------------
async def test_files_leave_out_retired_and_uncredentialed(fleet: Fleet) -> None:
    async with transaction(fleet.db_url, migrate_gateway) as session:
        await add_device(session, "dev-new", DeviceType.PENDANT)  # registered, no credentials yet
        await retire_device(session, "dev-b")
    await fleet.write_auth()
    users = [line.split(":", 1)[0] for line in fleet.password_file.read_text().splitlines()]
    assert users == ["dev-a", "dev-c"]
    services = [line.split(":", 1)[0] for line in fleet.service_password_file.read_text().splitlines()]
    assert services == [GATEWAY, RECEIVER]
    assert f"pattern readwrite {ROOT}/devices/%u/#" in fleet.acl_file.read_text()
    for path in (fleet.password_file, fleet.service_password_file, fleet.acl_file):
        assert path.stat().st_mode & 0o777 == 0o640
    names = sorted(p.name for p in fleet.password_file.parent.iterdir())
    assert names == ["acl", "device-passwords", "service-passwords"]


async def test_refusals(fleet: Fleet) -> None:
    cases: list[Callable[[Any], Awaitable[object]]] = [
        lambda s: issue_device_credentials(s, "unknown"),
        lambda s: issue_device_credentials(s, GATEWAY),
        lambda s: ensure_service_account(s, "dev-a", "gateway", "pw"),  # a device's name
        lambda s: ensure_service_account(s, "x", "admin", "pw"),
        lambda s: ensure_service_account(s, "bad/name", "gateway", "pw"),
    ]
    for case in cases:
        with pytest.raises(ProvisioningError):
            async with transaction(fleet.db_url, migrate_gateway) as session:
                await case(session)
    with pytest.raises(ProvisioningError):
        render_password_file([("u", "h1"), ("u", "h2")])
    with pytest.raises(ProvisioningError):
        render_acl("trygg/#", GATEWAY, RECEIVER)


def test_acl_grants_exactly_what_the_contract_needs() -> None:
    acl = render_acl("site/v1", "gw", "rx")
    rules = [line for line in acl.splitlines() if line and not line.startswith("#")]
    assert rules == [
        "pattern readwrite site/v1/devices/%u/#",
        "user gw",
        "topic read site/v1/devices/#",
        "topic write site/v1/devices/+/alarm/ack",
        "topic write site/v1/devices/+/config",
        "topic write site/v1/devices/+/camera/request",
        "topic write site/v1/devices/+/camera/end",
        "topic write site/v1/devices/+/voice/request",
        "topic write site/v1/devices/+/voice/end",
        "topic readwrite site/v1/gateway/#",
        "user rx",
        "topic write site/v1/devices/+/alarm/ack",
        "topic readwrite site/v1/receiver/#",
    ]


# --- the CLI ---------------------------------------------------------------------------------------------------
@pytest.fixture
def cli_db(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """The CLI's settings point at a fresh database (get_settings is cached: cleared around the test)."""
    url = f"sqlite+aiosqlite:///{tmp_path}/cli.db"
    monkeypatch.setenv("TRYGG_GATEWAY_DATABASE_URL", url)
    get_settings.cache_clear()
    yield url
    get_settings.cache_clear()


def test_cli_issues_and_writes(cli_db: str, tmp_path: Path) -> None:
    async def register() -> None:
        async with transaction(cli_db, migrate_gateway) as session:
            await add_device(session, "dev-cli", DeviceType.PENDANT)

    asyncio.run(register())
    runner = CliRunner()
    result = runner.invoke(broker_app, ["service-account", GATEWAY, "--role", "gateway", "--generate"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(broker_app, ["service-account", RECEIVER, "--role", "receiver", "--password", "pw"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(broker_app, ["device-credentials", "dev-cli"])
    assert result.exit_code == 0, result.output
    password = result.output.split("password: ", 1)[1].strip()
    assert runner.invoke(broker_app, ["device-credentials", "nope"]).exit_code == 1
    pw_file, svc_file, acl_file = tmp_path / "out" / "devices", tmp_path / "out" / "services", tmp_path / "out" / "acl"
    args = [
        "--device-password-file",
        str(pw_file),
        "--service-password-file",
        str(svc_file),
        "--acl-file",
        str(acl_file),
    ]
    result = runner.invoke(broker_app, ["write-auth", *args])
    assert result.exit_code == 0, result.output
    hashes = dict(line.split(":", 1) for line in pw_file.read_text().splitlines())
    services = dict(line.split(":", 1) for line in svc_file.read_text().splitlines())
    assert sorted(hashes) == ["dev-cli"] and sorted(services) == [GATEWAY, RECEIVER]
    assert verify_mosquitto_hash(password, hashes["dev-cli"]) and verify_mosquitto_hash("pw", services[RECEIVER])
    assert f"user {GATEWAY}" in acl_file.read_text()
