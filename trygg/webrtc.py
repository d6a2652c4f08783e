"""WebRTC set-up shared by the gateway's camera relay and the simulated cameras (aiortc).

Every peer gets an explicit RTCConfiguration (aiortc's default would use a public STUN server) with the ICE
servers of the setting ``webrtc_ice_servers`` (production needs STUN/TURN, e.g. coturn). aioice has no address
filter and never gathers 127.0.0.1, so the setting ``webrtc_host_addresses`` (tests and the demo:
["127.0.0.1"]) replaces its host-address lookup, openly and only when set.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any
from urllib.parse import unquote

import aioice.ice
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection

from trygg.settings import Settings

_ORIGINAL_HOST_ADDRESSES: Callable[[bool, bool], list[str]] = getattr(
    aioice.ice.get_host_addresses, "trygg_original", aioice.ice.get_host_addresses
)


def use_host_addresses(addresses: Sequence[str]) -> None:
    """Gather ICE host candidates on exactly ``addresses`` (process-wide); empty puts aioice's lookup back."""
    if not addresses:
        setattr(aioice.ice, "get_host_addresses", _ORIGINAL_HOST_ADDRESSES)  # noqa: B010
        return
    allowed = tuple(addresses)

    def restricted(use_ipv4: bool, use_ipv6: bool) -> list[str]:
        return [a for a in allowed if (use_ipv6 if ":" in a else use_ipv4)]

    restricted.trygg_original = _ORIGINAL_HOST_ADDRESSES  # type: ignore[attr-defined]
    setattr(aioice.ice, "get_host_addresses", restricted)  # noqa: B010


def ice_server(url: str) -> Any:
    """``stun:host:port`` or ``turn[s]:user:secret@host:port[?transport=...]`` as an RTCIceServer."""
    scheme, _, rest = url.partition(":")
    if scheme in ("turn", "turns") and "@" in rest:
        credentials, _, host = rest.rpartition("@")
        user, _, secret = credentials.partition(":")
        return RTCIceServer(urls=f"{scheme}:{host}", username=unquote(user), credential=unquote(secret))
    return RTCIceServer(urls=url)


def rtc_configuration(settings: Settings) -> Any:
    """The RTCConfiguration of every peer (always explicit: aiortc's default would use a public STUN server)."""
    return RTCConfiguration(iceServers=[ice_server(url) for url in settings.webrtc_ice_servers])


def new_peer_connection(settings: Settings) -> Any:
    use_host_addresses(settings.webrtc_host_addresses)
    return RTCPeerConnection(rtc_configuration(settings))
