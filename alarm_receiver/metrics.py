"""Prometheus metrics of the receiver (served on /metrics)."""

from prometheus_client import Counter, Gauge

INTAKE_ITEMS = Counter("trygg_receiver_intake_items_total", "Items forwarded by the gateway", ["result"])
TRANSITIONS = Counter("trygg_receiver_transitions_total", "Alarm lifecycle changes", ["action"])
ESCALATIONS = Counter("trygg_receiver_escalations_total", "Alarms escalated", ["level"])
NOTICES_SENT = Counter("trygg_receiver_device_notices_sent_total", "Notices published to devices")
NOTICE_FAILURES = Counter("trygg_receiver_device_notice_failures_total", "Notice publishes that failed")
REJECTED_REQUESTS = Counter("trygg_receiver_rejected_requests_total", "HTTP requests refused", ["reason"])
LIVE_SUBSCRIBERS = Gauge("trygg_receiver_live_subscribers", "Browsers connected to the live feed")
SESSIONS_ENDED = Counter("trygg_receiver_sessions_ended_total", "Live feeds ended with their session", ["why"])
# issue 10: the client register
ROUTING_MISSING = Counter(
    "trygg_receiver_routing_missing_total", "Alarms in with no client, or a client with no patrol area", ["why"]
)
CLIENT_VIEWS = Counter("trygg_receiver_client_views_total", "Client records viewed (logged)", ["what", "role"])
HEALTH_CODES = ("health.store_failing", "health.store_unresponsive")
HEALTH_FAILING = Gauge("trygg_receiver_health_failing", "1 while /health answers 503 for this reason code", ["code"])
for _code in HEALTH_CODES:
    HEALTH_FAILING.labels(_code)  # every reason exported from the start (0), so an alert rule sees it
INTAKE_COMMIT_FAILURES = Counter("trygg_receiver_intake_commit_failures_total", "Intake batches that failed to commit")
