"""Prometheus metrics of the gateway (served on /metrics of its HTTP port)."""

from prometheus_client import Counter, Gauge, Histogram

MESSAGES = Counter("trygg_gateway_messages_total", "MQTT messages received from devices", ["kind"])
REJECTED = Counter("trygg_gateway_rejected_total", "Device messages rejected, by reason code", ["code"])
ALARMS_STORED = Counter("trygg_gateway_alarms_stored_total", "Alarms durably stored for the first time")
DUPLICATES = Counter("trygg_gateway_alarm_duplicates_total", "Alarms received again (answered, not stored)")
STORE_ERRORS = Counter("trygg_gateway_store_errors_total", "Intake batches that failed to commit")
ACKS_PUBLISHED = Counter("trygg_gateway_acks_published_total", "Acks published to devices", ["status"])
ACK_PUBLISH_FAILED = Counter("trygg_gateway_ack_publish_failed_total", "Acks that could not be published")
INTAKE_BATCH = Histogram(
    "trygg_gateway_intake_batch_seconds",
    "Time to validate and commit one intake batch",
    buckets=(0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.25, 1.0),
)
FORWARDED = Counter("trygg_gateway_forwarded_total", "Outbox rows the receiver confirmed")
FORWARD_FAILURES = Counter("trygg_gateway_forward_failures_total", "Forward attempts that failed")
OUTBOX_PENDING = Gauge("trygg_gateway_outbox_pending", "Outbox rows not yet confirmed by the receiver")
OUTBOX_OLDEST_AGE = Gauge(
    "trygg_gateway_outbox_oldest_age_seconds", "Age of the oldest outbox row not yet confirmed by the receiver"
)
PUBLISH_FAILED = Counter("trygg_gateway_publish_failed_total", "Publishes of gateway features that failed")
MQTT_CONNECTED = Gauge("trygg_gateway_mqtt_connected", "1 while the gateway is connected to the broker")
API_REFUSED = Counter("trygg_gateway_api_refused_total", "HTTP API requests refused", ["reason"])
DEAD_LETTERS = Counter(
    "trygg_gateway_dead_letters_total", "Device messages kept as dead letters (refused or failed), by code", ["code"]
)
HANDLER_RETRIES = Counter(
    "trygg_gateway_handler_retries_total", "Message handlers retried because the store was unavailable", ["kind"]
)
UNSTORABLE = Counter("trygg_gateway_unstorable_total", "Intake items the store refused on their content")
HEARTBEATS = Counter("trygg_gateway_heartbeats_total", "Heartbeats from registered devices")
DEVICES_OFFLINE = Counter("trygg_gateway_device_offline_alarms_total", "device_offline alarms raised")
CANCELS_UNANSWERED = Counter(
    "trygg_gateway_cancels_unanswered_total", "Cancels of an alarm not stored (yet), left for the device to resend"
)
TAKEOVERS = Counter("trygg_gateway_leader_takeovers_total", "Times this gateway took over the time-driven work")
# voice calls (gateway/voice/): a unit's signalling refused (malformed, oversize, a call that may not ring)
VOICE_REJECTED = Counter("trygg_gateway_voice_rejected_total", "Voice signalling from units refused", ["kind", "code"])
VOICE_CALLS = Counter("trygg_gateway_voice_calls_total", "Voice calls by how they ended", ["kind", "reason"])


HEALTH_CODES = (
    "health.store_failing",
    "health.store_unresponsive",
    "health.mqtt_disconnected",
    "health.mqtt_stalled",
    "health.backlog_old",
)
HEALTH_FAILING = Gauge("trygg_gateway_health_failing", "1 while /health answers 503 for this reason code", ["code"])
for _code in HEALTH_CODES:
    HEALTH_FAILING.labels(_code)  # every reason exported from the start (0), so an alert rule sees it
MQTT_INFLIGHT_OLDEST_AGE = Gauge(
    "trygg_gateway_mqtt_inflight_oldest_age_seconds", "Age of the oldest QoS 1 publish still waiting for its PUBACK"
)

DEVICES_FLOODING = Gauge("trygg_gateway_devices_flooding", "Devices now flagged for sending alarms over the rate limit")
DEVICE_FLOODS = Counter("trygg_gateway_device_floods_total", "Times a device was flagged for flooding alarms")
BYPASSED = Counter(
    "trygg_gateway_alarms_taken_ahead_total", "Alarms of other devices taken in by the bypass ahead of a device's flood"
)


_MESSAGE_COUNTERS: dict[str, Counter] = {}


def message_counter(kind: str) -> Counter:
    """The labelled counter for one topic kind, looked up once (labels() costs on a path taking 15k msg/s)."""
    counter = _MESSAGE_COUNTERS.get(kind)
    if counter is None:
        counter = _MESSAGE_COUNTERS[kind] = MESSAGES.labels(kind)
    return counter
