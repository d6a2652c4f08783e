"""gateway/webrtc/peers.py: the relays' bookkeeping of peer connections and tasks, with real aiortc peers on
loopback (no mocks): states reach the relay's handler, closed connections are forgotten, shutdown closes what is
left and cancels the tasks."""

from __future__ import annotations

import asyncio

from aiortc import RTCPeerConnection

from gateway.webrtc.peers import Peers
from testing.wait import eventually
from trygg.settings import Settings
from trygg.webrtc import rtc_configuration


def settings() -> Settings:
    return Settings(webrtc_host_addresses=["127.0.0.1"], webrtc_ice_servers=[])


async def test_peers_track_connections_and_tasks_until_closed() -> None:
    s = settings()
    peers = Peers(s)
    states: list[str] = []

    async def on_state(state: str) -> None:
        states.append(state)

    ours = peers.new(on_state)
    other = peers.new(on_state)
    assert peers.open == 2
    remote = RTCPeerConnection(rtc_configuration(s))  # the far side: not ours to track
    try:
        ours.createDataChannel("probe")
        await ours.setLocalDescription(await ours.createOffer())
        await remote.setRemoteDescription(ours.localDescription)
        await remote.setLocalDescription(await remote.createAnswer())
        await ours.setRemoteDescription(remote.localDescription)
        await eventually(lambda: "connected" in states, timeout=20)

        await peers.close([ours])
        assert peers.open == 1 and ours.connectionState == "closed"
        await eventually(lambda: "closed" in states, timeout=5)  # the relay hears its own close too

        waiting = peers.spawn(asyncio.sleep(3600))

        async def shutdown() -> None:
            await peers.close_all()

        closer = peers.spawn(shutdown())  # close_all from one of its own tasks leaves that task alone
        await closer
        assert peers.open == 0 and other.connectionState == "closed"
        assert waiting.cancelled() and not closer.cancelled()
    finally:
        await remote.close()
