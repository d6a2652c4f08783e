"""Prometheus metrics of the DC-09 receiver (on the gateway's /metrics)."""

from prometheus_client import Counter, Gauge

FRAMES = Counter(
    "trygg_gateway_dc09_frames_total", "DC-09 frames answered, by transport and answer", ["transport", "answer"]
)
REFUSED = Counter("trygg_gateway_dc09_refused_total", "DC-09 frames refused (NAK/DUH) or dropped, by reason", ["code"])
LINK_TESTS = Counter("trygg_gateway_dc09_link_tests_total", "DC-09 NULL link tests and test events from known units")
CONNECTIONS = Gauge("trygg_gateway_dc09_tcp_connections", "Open DC-09 TCP connections")
