"""TLS everywhere, with a test CA (issue 8, point 12): both services serve HTTPS (uvicorn's TLS from the
`*_tls_certfile`/`*_tls_keyfile` settings), they call each other over https:// trusting `http_ca_file`, and every MQTT
client of Trygg verifies the broker with `mqtt_ca_file`. An alarm travels device -> broker (TLS) -> gateway ->
receiver (HTTPS) -> live feed (HTTPS), and the console's passage to the gateway works over HTTPS too."""

from __future__ import annotations

import asyncio
import ssl
import subprocess
from pathlib import Path

import httpx
import pytest

from devices import DeviceType
from firmware_sim.device import SimDevice
from testing.broker import Broker, free_port
from testing.harness import (
    Api,
    LiveFeedReader,
    create_user,
    make_settings,
    prepare_stores,
    running_gateway,
    running_receiver,
)
from trygg import mqtt

REPO = Path(__file__).resolve().parent.parent


def make_ca(directory: Path) -> Path:
    subprocess.run([str(REPO / "scripts" / "make-test-ca"), str(directory)], check=True, capture_output=True)
    return directory


async def test_alarm_over_tls_end_to_end(tmp_path: Path) -> None:
    certs = make_ca(tmp_path / "certs")
    ca, cert, key = certs / "ca.crt", certs / "server.crt", certs / "server.key"
    tls_port = free_port()
    broker = Broker(
        workdir=tmp_path / "mosquitto",
        extra_config=f"listener {tls_port} 127.0.0.1\ncafile {ca}\ncertfile {cert}\nkeyfile {key}\n",
    )
    await asyncio.to_thread(broker.start)
    try:
        rx_port, gw_port = free_port(), free_port()
        s = make_settings(
            tmp_path,
            f"mqtts://127.0.0.1:{tls_port}",
            mqtt_ca_file=ca,
            receiver_http_port=rx_port,
            gateway_http_port=gw_port,
            receiver_url=f"https://127.0.0.1:{rx_port}",
            gateway_url=f"https://127.0.0.1:{gw_port}",
            receiver_tls_certfile=cert,
            receiver_tls_keyfile=key,
            gateway_tls_certfile=cert,
            gateway_tls_keyfile=key,
            http_ca_file=ca,
        )
        await prepare_stores(s, {"tls-pendant": DeviceType.PENDANT})
        await create_user(s, "op", "operator")
        trust = ssl.create_default_context(cafile=str(ca))
        async with running_receiver(s), running_gateway(s, http=True):
            api = Api(s)
            await api.http.aclose()
            api.http = httpx.AsyncClient(base_url=s.receiver_url, timeout=10, verify=trust)
            await api.login("op")
            device = SimDevice("tls-pendant", DeviceType.PENDANT, s)  # connects with mqtt_ca_file
            async with LiveFeedReader(api) as feed:
                await device.start()
                try:
                    alarm_id = await device.press("fall")
                    alarm = await feed.next_alarm(10, device_id="tls-pendant", alarm_id=alarm_id)
                    assert alarm["state"] == "new"
                    # the console's passage to the gateway, over HTTPS both ways
                    r = await api.http.get("/gw/api/v1/devices/tls-pendant")
                    assert r.status_code == 200, r.text
                finally:
                    await device.stop()
            await api.close()

            # plain HTTP to an HTTPS port, and HTTPS without the CA, are both refused
            for base in (s.receiver_url, s.gateway_url):
                with pytest.raises(httpx.HTTPError):
                    async with httpx.AsyncClient(timeout=5) as plain:
                        await plain.get(base.replace("https://", "http://") + "/health")
                with pytest.raises(httpx.ConnectError):
                    async with httpx.AsyncClient(timeout=5) as untrusting:
                        await untrusting.get(f"{base}/health")
                async with httpx.AsyncClient(timeout=5, verify=trust) as trusting:
                    assert (await trusting.get(f"{base}/health")).status_code == 200
    finally:
        await asyncio.to_thread(broker.stop)


async def test_mqtt_clients_verify_the_broker_with_the_setting(tmp_path: Path) -> None:
    certs = make_ca(tmp_path / "certs")
    other = make_ca(tmp_path / "other-ca")
    tls_port = free_port()
    broker = Broker(
        workdir=tmp_path / "mosquitto",
        extra_config=(
            f"listener {tls_port} 127.0.0.1\ncafile {certs / 'ca.crt'}\n"
            f"certfile {certs / 'server.crt'}\nkeyfile {certs / 'server.key'}\n"
        ),
    )
    await asyncio.to_thread(broker.start)
    try:
        url = f"mqtts://127.0.0.1:{tls_port}"
        good = mqtt.make_client("tls-probe-good", persistent=False)
        await mqtt.connect(good, mqtt.MqttEndpoint.from_url(url, ca_file=certs / "ca.crt"), timeout_s=5)
        await good.disconnect()
        for ca_file in (other / "ca.crt", None):  # another CA, or the system's store: the test CA is not in it
            bad = mqtt.make_client("tls-probe-bad", persistent=False)
            bad.set_config({"reconnect_retries": 0})
            with pytest.raises(ssl.SSLCertVerificationError):
                await mqtt.connect(bad, mqtt.MqttEndpoint.from_url(url, ca_file=ca_file), timeout_s=5)
    finally:
        await asyncio.to_thread(broker.stop)


def test_tls_settings_go_together(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="receiver_tls_certfile and receiver_tls_keyfile go together"):
        make_settings(tmp_path, "mqtt://127.0.0.1:1", receiver_tls_certfile=tmp_path / "c.crt")
