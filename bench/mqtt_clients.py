"""Subscriber ceiling of the Python MQTT clients: messages per second one subscriber receives.

For each client (gmqtt as Trygg configures it, gmqtt on uvloop, paho-mqtt 2.x with its own network thread,
aiomqtt) and QoS 0 and 1, a private Mosquitto carries 200-byte payloads from a publisher in a separate process to
the subscriber under test, in a third process. The publisher is a tiny raw-socket MQTT 3.1.1 client (pre-built
packets, one ``sendall`` per 100 messages) so it costs little CPU; it keeps at most ``--window`` messages between
what it sent and what the subscriber has counted (a shared counter), so the subscriber is the bottleneck and the
broker's queue stays bounded. The subscribers speak MQTT 5, as Trygg does.

    .venv/bin/python -m bench.mqtt_clients [--seconds 5] [--out bench/results/mqtt_clients.json]
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import os
import socket
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench._common import machine, raise_nofile, table, write_json
from firmware_sim.swarm import _packet, _utf8, publish_packet
from testing.broker import Broker

PAYLOAD_SIZE = 200
CHUNK = 100
WARMUP_S = 0.5
CLIENTS = ("gmqtt", "paho", "aiomqtt")  # "gmqtt+uvloop" and "gmqtt-inline" also accepted


@dataclass(frozen=True)
class Case:
    client: str
    qos: int
    port: int
    topic: str
    seconds: float
    window: int


# --- the publisher: raw MQTT 3.1.1 over a socket -----------------------------------------------------------------
# The packets come from the simulator's raw MQTT 3.1.1 client (firmware_sim/swarm.py): one encoder, not two.
def _publish(topic: str, payload: bytes, qos: int, packet_id: int) -> bytes:
    return publish_packet(topic, payload, qos, packet_id=packet_id)


def publisher(case: Case, received: Any, sent: Any, stop: Any) -> None:
    """Floods ``case.topic`` while (sent - received) < window; drains PUBACKs in a thread for QoS 1."""
    sock = socket.create_connection(("127.0.0.1", case.port))
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    connect = b"\x00\x04MQTT\x04\x02\x00\x3c" + _utf8(f"bench-pub-{os.getpid()}")
    sock.sendall(_packet(0x10, connect))
    if sock.recv(4)[:1] != b"\x20":
        raise RuntimeError("publisher: no CONNACK")
    if case.qos:

        def drain() -> None:
            while True:
                try:
                    if not sock.recv(1 << 16):
                        return
                except OSError:
                    return

        threading.Thread(target=drain, daemon=True).start()
    payload = (b'{"seq":0,"pad":"' + b"x" * PAYLOAD_SIZE)[: PAYLOAD_SIZE - 2] + b'"}'
    chunks = [
        b"".join(_publish(case.topic, payload, case.qos, (c * CHUNK + k) % 65535 + 1) for k in range(CHUNK))
        for c in range(655 if case.qos else 1)
    ]
    n = 0
    i = 0
    while not stop.is_set():
        if n - received.value < case.window:
            sock.sendall(chunks[i])
            i = (i + 1) % len(chunks)
            n += CHUNK
            sent.value = n
        else:
            time.sleep(0.0002)
    try:
        sock.sendall(b"\xe0\x00")
        sock.close()
    except OSError:
        pass


# --- the subscribers -----------------------------------------------------------------------------------------------
class Meter:
    """Counts in the subscriber; publishes the count to the shared counter and measures the window."""

    def __init__(self, received: Any, sent: Any) -> None:
        self.count = 0
        self.received = received
        self.sent = sent

    def result(self, c0: int, s0: int, t0: float, cpu0: float) -> dict[str, Any]:
        t1, c1, s1, cpu1 = time.perf_counter(), self.count, self.sent.value, time.process_time()
        dt = t1 - t0
        return {
            "received_per_s": round((c1 - c0) / dt),
            "published_per_s": round((s1 - s0) / dt),
            "window_s": round(dt, 3),
            "messages_in_window": c1 - c0,
            "backlog_at_end": s1 - c1,
            "subscriber_cpu_pct": round(100 * (cpu1 - cpu0) / dt),
        }


async def _async_measure(meter: Meter, seconds: float) -> dict[str, Any]:
    async def publish_count() -> None:
        while True:
            meter.received.value = meter.count
            await asyncio.sleep(0.005)

    pusher = asyncio.create_task(publish_count())
    try:
        while meter.count == 0:  # noqa: ASYNC110 (polling keeps the per-message path free of an Event)
            await asyncio.sleep(0.005)
        await asyncio.sleep(WARMUP_S)
        c0, s0, t0, cpu0 = meter.count, meter.sent.value, time.perf_counter(), time.process_time()
        await asyncio.sleep(seconds)
        return meter.result(c0, s0, t0, cpu0)
    finally:
        pusher.cancel()


async def sub_gmqtt(case: Case, meter: Meter, ready: Any, *, inline: bool = False) -> dict[str, Any]:
    from trygg import mqtt

    async def on_message(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> int:
        meter.count += 1
        return 0

    def on_message_inline(client: Any, topic: str, payload: bytes, qos: int, props: Any) -> None:
        meter.count += 1

    # As the gateway does: gmqtt, MQTT 5, optimistic_acknowledgement=False (PUBACK after the handler returns);
    # ``inline``: a plain function, no task per message, as the gateway's QoS 0 heartbeat connection does.
    client = mqtt.make_client(f"bench-sub-{os.getpid()}", persistent=False, on_message=None if inline else on_message)
    if inline:
        client.on_message = on_message_inline
    subscribed = asyncio.Event()
    client.on_subscribe = lambda *a: subscribed.set()
    await mqtt.connect(client, mqtt.MqttEndpoint("127.0.0.1", case.port))
    client.subscribe(case.topic, qos=case.qos)
    await asyncio.wait_for(subscribed.wait(), 10)
    ready.set()
    try:
        return await _async_measure(meter, case.seconds)
    finally:
        await client.disconnect()


async def sub_aiomqtt(case: Case, meter: Meter, ready: Any) -> dict[str, Any]:
    import aiomqtt

    async with aiomqtt.Client(
        "127.0.0.1", case.port, identifier=f"bench-sub-{os.getpid()}", protocol=aiomqtt.ProtocolVersion.V5
    ) as client:
        await client.subscribe(case.topic, qos=case.qos)

        async def consume() -> None:
            async for _ in client.messages:
                meter.count += 1

        consumer = asyncio.create_task(consume())
        ready.set()
        try:
            return await _async_measure(meter, case.seconds)
        finally:
            consumer.cancel()


def sub_paho(case: Case, meter: Meter, ready: Any) -> dict[str, Any]:
    import paho.mqtt.client as paho
    from paho.mqtt.enums import CallbackAPIVersion

    client = paho.Client(CallbackAPIVersion.VERSION2, client_id=f"bench-sub-{os.getpid()}", protocol=paho.MQTTv5)
    subscribed = threading.Event()

    def on_message(client: Any, userdata: Any, msg: Any) -> None:
        meter.count += 1

    client.on_message = on_message
    client.on_subscribe = lambda *a: subscribed.set()
    client.connect("127.0.0.1", case.port)
    client.loop_start()  # paho's own network thread does the reading and calls on_message
    try:
        client.subscribe(case.topic, qos=case.qos)
        if not subscribed.wait(10):
            raise RuntimeError("paho: no SUBACK")
        ready.set()
        while meter.count == 0:
            time.sleep(0.005)
        deadline = time.perf_counter() + WARMUP_S
        while time.perf_counter() < deadline:
            meter.received.value = meter.count
            time.sleep(0.005)
        c0, s0, t0, cpu0 = meter.count, meter.sent.value, time.perf_counter(), time.process_time()
        deadline = t0 + case.seconds
        while time.perf_counter() < deadline:
            meter.received.value = meter.count
            time.sleep(0.005)
        return meter.result(c0, s0, t0, cpu0)
    finally:
        client.disconnect()
        client.loop_stop()


def subscriber(case: Case, received: Any, sent: Any, ready: Any, results: Any) -> None:
    meter = Meter(received, sent)
    try:
        if case.client == "paho":
            out = sub_paho(case, meter, ready)
        elif case.client == "aiomqtt":
            out = asyncio.run(sub_aiomqtt(case, meter, ready))
        elif case.client == "gmqtt-inline":
            out = asyncio.run(sub_gmqtt(case, meter, ready, inline=True))
        elif case.client == "gmqtt+uvloop":
            import uvloop

            out = uvloop.run(sub_gmqtt(case, meter, ready))
        else:
            out = asyncio.run(sub_gmqtt(case, meter, ready))
        results.put(out)
    except Exception as exc:
        results.put({"error": repr(exc)})


def run_case(case: Case) -> dict[str, Any]:
    ctx = mp.get_context("spawn")
    received = ctx.Value("q", 0, lock=False)
    sent = ctx.Value("q", 0, lock=False)
    ready, stop = ctx.Event(), ctx.Event()
    results = ctx.Queue()
    sub = ctx.Process(target=subscriber, args=(case, received, sent, ready, results))
    sub.start()
    deadline = time.monotonic() + 30
    while not ready.wait(0.1):
        if not results.empty() or time.monotonic() > deadline:
            sub.terminate()
            sub.join(5)
            return results.get() if not results.empty() else {"error": "subscriber not ready"}
    pub = ctx.Process(target=publisher, args=(case, received, sent, stop))
    pub.start()
    try:
        out: dict[str, Any] = results.get(timeout=case.seconds + 60)
    finally:
        stop.set()
        pub.join(10)
        sub.join(10)
        for p in (pub, sub):
            if p.is_alive():
                p.terminate()
                p.join(5)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=5.0, help="measured window per case (after a 0.5 s warm-up)")
    parser.add_argument("--window", type=int, default=20000, help="max messages between publisher and subscriber")
    parser.add_argument("--clients", default=",".join(CLIENTS), help=f"comma-separated subset of {CLIENTS}")
    parser.add_argument("--out", type=Path, default=Path("bench/results/mqtt_clients.json"))
    args = parser.parse_args()
    raise_nofile()
    started = time.perf_counter()
    workdir = Path(tempfile.mkdtemp(prefix="trygg-bench-mqtt-"))
    broker = Broker(workdir=workdir)
    broker.start()
    cases: list[dict[str, Any]] = []
    try:
        for client in [c.strip() for c in args.clients.split(",") if c.strip()]:
            for qos in (0, 1):
                # "+" is a wildcard: a topic level "gmqtt+uvloop" made the subscription invalid (the case timed out)
                topic = f"bench/clients/{client.replace('+', '-')}/{qos}"
                case = Case(client, qos, broker.port, topic, args.seconds, args.window)
                print(f"{client} QoS {qos} ...", flush=True)
                cases.append({"client": client, "qos": qos, **run_case(case)})
    finally:
        broker.stop()
    result = {
        "benchmark": "mqtt_clients",
        "date": datetime.now(UTC).date().isoformat(),
        "machine": machine(),
        "params": {
            "seconds": args.seconds,
            "warmup_s": WARMUP_S,
            "payload_bytes": PAYLOAD_SIZE,
            "window": args.window,
            "subscriber_protocol": "MQTT 5",
            "publisher": "raw-socket MQTT 3.1.1, separate process",
        },
        "cases": cases,
        "total_s": round(time.perf_counter() - started, 1),
    }
    m = result["machine"]
    print(f"\nsubscriber ceiling, 200-byte payloads, {args.seconds} s window per case")
    print(f"machine: {m['cores']} cores, Python {m['python']}, {m['mosquitto']}\n")
    rows = [
        [
            c["client"],
            c["qos"],
            c.get("received_per_s", c.get("error", "?")),
            c.get("subscriber_cpu_pct", "-"),
            c.get("published_per_s", "-"),
            c.get("backlog_at_end", "-"),
        ]
        for c in cases
    ]
    print(table(["client", "QoS", "received msg/s", "sub CPU %", "published msg/s", "backlog"], rows))
    write_json(args.out, result)
    print(f"\nwrote {args.out} ({result['total_s']} s)")


if __name__ == "__main__":
    main()
