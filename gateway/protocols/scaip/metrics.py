"""Prometheus metrics of the SCAIP receiver (on the gateway's /metrics)."""

from prometheus_client import Counter

REQUESTS = Counter("trygg_scaip_requests_total", "SCAIP requests (<mrq>) read, by message type", ["mty"])
REJECTED = Counter(
    "trygg_scaip_rejected_total", "SCAIP messages refused (SIP or <mrq>), by code: malformed, oversize, ...", ["code"]
)
ANSWERS = Counter("trygg_scaip_answers_total", "SCAIP answers (<mrs>) made, by result code snu", ["snu"])
MRS_UNDELIVERED = Counter(
    "trygg_scaip_mrs_undelivered_total", "<mrs> MESSAGEs the unit never answered (it resends its request)"
)
