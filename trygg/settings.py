"""All of Trygg's settings in one pydantic-settings class.

Sources, highest first: keyword arguments, environment (``TRYGG_*``), ``.env``, the YAML file named by
``TRYGG_CONFIG_FILE`` (default ``config/trygg.yaml`` when it exists), then the defaults below.
Every setting is documented in docs/configuration.md.
"""

import os
import re
from datetime import time
from functools import lru_cache
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, SecretStr, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    YamlConfigSettingsSource,
)

from devices.types import AlarmType


def _config_file() -> Path:
    return Path(os.environ.get("TRYGG_CONFIG_FILE", "config/trygg.yaml"))


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="TRYGG_", env_file=".env", extra="ignore", validate_default=True)

    # --- general
    data_dir: Path = Path("data")
    log_level: Literal["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"] = "INFO"
    log_json: bool = False
    timezone: str = "Europe/Stockholm"

    # --- broker and contract
    mqtt_url: str = "mqtt://127.0.0.1:1883"
    mqtt_protocol: Literal["5", "3.1.1"] = "5"
    # CA certificate(s) (PEM) that every MQTT client of Trygg trusts for mqtts:// URLs; unset: the system's store.
    mqtt_ca_file: Path | None = None
    topic_root: str = "trygg/v1"
    # Never below the 8 KiB the contract promises devices.
    max_payload_bytes: int = Field(8192, ge=8192, le=262144)

    # --- gateway
    gateway_database_url: str = "sqlite+aiosqlite:///data/gateway.db"
    gateway_client_id: str = "trygg-gateway"
    gateway_mqtt_username: str | None = None
    gateway_mqtt_password: SecretStr | None = None
    gateway_session_expiry_s: int = Field(7 * 24 * 3600, ge=60)
    gateway_http_host: str = "127.0.0.1"
    gateway_http_port: int = 8080
    # HTTPS for the gateway's own server (both or neither); unset: plain HTTP (behind a TLS proxy, or loopback).
    gateway_tls_certfile: Path | None = None
    gateway_tls_keyfile: Path | None = None
    intake_batch_max: int = Field(256, ge=1, le=10000)
    forward_batch_max: int = Field(200, ge=1, le=5000)
    forward_backoff_max_s: float = Field(30.0, gt=0)
    forward_timeout_s: float = Field(5.0, gt=0)
    # Device messages the gateway could not handle (malformed, or their handling failed) are kept for technicians
    # (GET /api/v1/dead-letters, `trygg dead-letters list`): the newest dead_letter_keep, each payload cut at
    # dead_letter_payload_max_bytes.
    dead_letter_keep: int = Field(1000, ge=1, le=1_000_000)
    dead_letter_payload_max_bytes: int = Field(4096, ge=64, le=262144)
    # Test-only fault injection: "before_commit:N" or "after_commit:N" makes the gateway SIGKILL itself
    # at its N-th intake batch, so the crash tests hit both sides of the commit deterministically.
    fault_kill_at: str | None = Field(None, pattern=r"^(before|after)_commit:[1-9][0-9]*$")

    # Bearer token Prometheus sends to /metrics (both services). Unset: the gateway's /metrics is refused;
    # the receiver's /metrics takes an admin or technician login token as well.
    metrics_token: SecretStr | None = None

    # --- alarm receiver
    receiver_database_url: str = "sqlite+aiosqlite:///data/receiver.db"
    receiver_url: str = "http://127.0.0.1:8081"
    gateway_url: str = "http://127.0.0.1:8080"  # where the receiver passes the console's /gw/api/v1 calls
    receiver_http_host: str = "127.0.0.1"
    receiver_http_port: int = 8081
    receiver_tls_certfile: Path | None = None
    receiver_tls_keyfile: Path | None = None
    # CA certificate(s) (PEM) the services trust when they call each other over https://; unset: the system's store.
    http_ca_file: Path | None = None
    receiver_client_id: str = "trygg-receiver"
    receiver_mqtt_username: str | None = None
    receiver_mqtt_password: SecretStr | None = None
    # Shared secret gateway -> receiver. No default: the services refuse to start without one of their own
    # (trygg/secrets.py; `trygg secrets token` makes one).
    intake_token: SecretStr | None = None
    escalate_first_s: float = Field(60.0, gt=0)
    escalate_second_s: float = Field(180.0, gt=0)
    token_ttl_s: int = Field(12 * 3600, ge=60)
    # Passwords of accounts: at least this long, and not on a list of common passwords (alarm_receiver/passwords.py).
    password_min_length: int = Field(12, ge=12, le=256)
    # Logins: argon2 runs in this many threads at most, never on the event loop; more waiting than
    # login_queue_max are answered 429 at once. Failed logins per username and per client address are limited
    # within a sliding window (alarm_receiver/login_throttle.py).
    login_hash_threads: int = Field(1, ge=1, le=16)
    login_queue_max: int = Field(32, ge=1, le=10000)
    login_fail_per_account: int = Field(10, ge=1)
    login_fail_per_address: int = Field(30, ge=1)
    login_fail_window_s: float = Field(300.0, gt=0)
    # Addresses (or CIDR networks) of reverse proxies whose X-Forwarded-For / X-Forwarded-Proto are believed.
    # Empty: those headers are ignored and the client address is the TCP peer's.
    trusted_proxies: list[str] = []
    # The night overview's nights (local time in `timezone`): from night_start to night_end the next morning.
    night_start: time = time(20, 0)
    night_end: time = time(8, 0)

    # --- simulated devices
    sim_outbox_dir: Path = Path("data/sim-outbox")
    sim_resend_min_s: float = Field(5.0, gt=0)
    sim_resend_max_s: float = Field(20.0, gt=0)
    sim_fallback_after_s: float = Field(60.0, gt=0)
    sim_fallback_mqtt_url: str | None = None
    # `device_id:password` lines (`trygg broker provision --fleet-credentials`): each simulated device logs in
    # to the broker with its own id and password, as real devices do. Unset: the URL's credentials, if any.
    sim_credentials_file: Path | None = None

    # --- the supervision log's anchor (trygg/audit/anchor.py, docs/audit.md)
    # Ed25519 private key (PEM) the services sign checkpoints with; kept outside the database.
    audit_signing_key_file: Path | None = None
    # Append-only file (JSON lines) the signed checkpoints are added to; `trygg log verify` checks the chain
    # against it. Put it where the database's owner cannot rewrite it (chattr +a, another host's mount).
    audit_checkpoint_file: Path | None = None
    audit_checkpoint_interval_s: float = Field(10.0, gt=0)
    # Public keys (base64 of the 32 raw bytes) whose checkpoints `trygg log verify` trusts, old keys included
    # after a rotation. Empty: the signing key's own public key.
    audit_public_keys: list[str] = []

    # --- camera check-ins (media)
    # STUN/TURN URLs for the WebRTC peers (e.g. "stun:stun.example.org:3478", "turn:user:pass@turn.example.org");
    # empty: no ICE servers (host candidates only).
    webrtc_ice_servers: list[str] = []
    # When set, only these local addresses are gathered as ICE host candidates (tests and the demo: ["127.0.0.1"],
    # which aioice otherwise never gathers). Empty: every interface's address, as aioice does by default.
    webrtc_host_addresses: list[str] = []

    # --- device fleet (supervision)
    # Seconds; below 60 only makes sense in tests (SCAIP allows 1-1440 minutes).
    heartbeat_interval_alarm_s: float = Field(60, gt=0, le=86400)
    heartbeat_interval_camera_s: float = Field(300, gt=0, le=86400)
    heartbeat_grace_s: float = Field(30.0, ge=0)
    offline_cap_alarm_s: float = Field(180.0, gt=0)
    online_settle_s: float = Field(120.0, ge=0)
    area_outage_share: float = Field(0.3, gt=0, le=1)
    area_outage_window_s: float = Field(120.0, gt=0)
    area_outage_min_devices: int = Field(5, ge=2)
    low_battery_pct: int = Field(20, ge=0, le=100)
    at_risk_networks: list[str] = ["2g", "3g"]
    current_firmware: dict[str, str] = {}
    supervision_period_s: float = Field(1.0, gt=0)
    health_flush_s: float = Field(5.0, gt=0)
    install_test_window_s: float = Field(300.0, gt=0)

    # --- camera check-ins (schedule)
    checkin_start_timeout_s: float = Field(600.0, gt=0)
    checkin_scheduler_period_s: float = Field(1.0, gt=0)
    checkin_catch_up_s: float = Field(12 * 3600.0, ge=0)

    # --- several instances of each service (docs/deployment.md, "Several instances"; trygg/leader.py)
    # This instance's name, unique among the instances of a service: its MQTT client ids end in it.
    instance_name: str = ""
    # Leader election (PostgreSQL advisory lock): tried/confirmed every leader_check_s; a hung leader's session is
    # ended by the server after leader_ttl_s, and it stops acting by its own clock before that.
    leader_check_s: float = Field(1.0, gt=0, le=60)
    leader_ttl_s: float = Field(5.0, gt=0, le=600)
    # After a takeover, heartbeats the old leader heard and had not shared yet, and those the broker still sent it
    # while it hung, were heard by nobody else. This is how long after the new leader got the lock such a heartbeat
    # could still have been heard; each device's deadline is then at least a full deadline of its own after it
    # (docs/architecture.md, "Several instances"). Unset: worked out from the settings below (takeover_window_s:
    # 1.5 x gateway_mqtt_keepalive_s + 3 x leader_check_s - leader_ttl_s + 1 s = 14 s with the defaults).
    leader_takeover_grace_s: float | None = Field(None, ge=0)
    # The keep-alive of the gateway's own broker connections: a hung gateway is dropped by the broker (which then
    # sends its share of the device topics to the other gateways) 1.5 x this after its last packet.
    gateway_mqtt_keepalive_s: int = Field(10, ge=2, le=600)
    # Followers write the heartbeats they received to the shared store this often (the leader reads them).
    heartbeat_share_flush_s: float = Field(1.0, gt=0, le=60)
    # MQTT 5 shared subscription group for the device topics ("$share/<group>/..."); unset: plain subscriptions.
    mqtt_shared_group: str | None = Field(None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
    # A second, independent broker the gateway subscribes to as well (devices fail over to it): its own sessions
    # and shared subscription group; an ack goes back on the broker its alarm came from. Unset: one broker.
    mqtt_second_url: str | None = None

    # --- SCAIP receiver (gateway/protocols/scaip/, docs/protocols-scaip.md)
    # Off unless a port is set; 0 takes a free port for each transport (tests, the demo). Standard SIP: 5060.
    scaip_host: str = "127.0.0.1"
    scaip_port: int | None = Field(None, ge=0, le=65535)
    scaip_transports: list[Literal["udp", "tcp"]] = ["udp", "tcp"]
    # A SIP message (headers and body) over this is refused with 413; an <mrq> body over scaip_max_mrq_bytes is
    # answered snu 1 (too long).
    scaip_max_sip_bytes: int = Field(8192, ge=1024, le=65535)
    scaip_max_mrq_bytes: int = Field(2048, ge=256, le=65535)
    # An alarm not committed within scaip_commit_wait_s is answered snu 4 (HOLD: the unit resends and is answered
    # from the store); more than scaip_max_pending alarms waiting for their commit: snu 6 (BUSY).
    scaip_commit_wait_s: float = Field(5.0, gt=0)
    scaip_max_pending: int = Field(1000, ge=1)
    # A ref seen again within this time is a resend of that alarm; later, the unit's counter came round: a new one.
    scaip_ref_window_s: float = Field(24 * 3600.0, gt=0)
    # The SIP URI the receiver's own MESSAGEs (the <mrs> answers) come from.
    scaip_receiver_uri: str = "sip:trygg@127.0.0.1"
    # --- SIA DC-09 receiver (gateway/protocols/dc09/, docs/protocols-dc09.md)
    # The port (the same number for each transport); unset: no DC-09 receiver.
    dc09_port: int | None = Field(None, ge=0, le=65535)
    dc09_host: str = "127.0.0.1"
    dc09_transports: list[Literal["tcp", "udp"]] = ["tcp", "udp"]
    # An encrypted frame's time stamp may be at most this far behind / ahead of the receiver's clock.
    dc09_time_behind_s: float = Field(40.0, gt=0)
    dc09_time_ahead_s: float = Field(20.0, gt=0)
    dc09_max_frame_bytes: int = Field(1024, ge=64, le=65536)
    dc09_idle_timeout_s: float = Field(120.0, gt=0)
    dc09_max_connections: int = Field(2000, ge=1)
    # Extra or overriding codes: "SIA:XX" or "CID:NNN" -> an alarm type or "test" (no standard code for a fall).
    dc09_code_map: dict[str, str] = {"SIA:MF": "fall", "CID:105": "fall"}
    # --- voice calls (docs/voice.md)
    # How long the gateway waits for a unit's voice/answer before telling the operator the unit did not answer.
    voice_answer_timeout_s: float = Field(10.0, gt=0, le=120)
    # The longest call; the gateway (and the unit, on its own clock) ends it then.
    voice_max_call_s: float = Field(1800.0, gt=0, le=7200)
    # --- client register and digital locks (issue 10; docs/clients.md)
    # The receiver signs unlock grants with this Ed25519 key (made by `trygg log keygen`); unset: no unlocks.
    lock_grant_signing_key_file: Path | None = None
    # The gateway accepts grants signed by these public keys (base64, as `trygg log keygen` prints them).
    lock_grant_public_keys: list[str] = []
    lock_grant_ttl_s: float = Field(900.0, gt=0, le=3600)  # a grant is good for 15 min
    lock_relock_after_s: float = Field(30.0, gt=0, le=600)  # the unlock command asks the lock to relock after
    # --- health and floods (issue 8: /health answers 503 for a failing store, a stalled session, an old backlog)
    health_store_probe_s: float = Field(10.0, gt=0)
    health_store_timeout_s: float = Field(3.0, gt=0)
    health_mqtt_stall_s: float = Field(30.0, gt=0)
    health_backlog_max_s: float = Field(60.0, gt=0)
    device_alarm_rate_limit: int = Field(30, ge=1)
    device_alarm_rate_window_s: float = Field(60.0, gt=0)
    # While a flagged device floods and the main session is behind, other devices' alarms are taken in from a QoS 0
    # copy on a third connection, ahead of the flood (gateway/dispatch.py); their main copies follow as duplicates.
    flood_bypass: bool = True
    # The gateway's read-ahead on its main session: announced as the MQTT 5 receive maximum and kept by pausing reading
    # (Mosquitto 2.0.11 does not hold to it). Without it a flood was read in at once and starved the commits.
    gateway_mqtt_receive_maximum: int = Field(512, ge=1, le=65535)

    @model_validator(mode="after")
    def _consistent(self) -> "Settings":
        if self.sim_resend_max_s < self.sim_resend_min_s:
            raise ValueError("sim_resend_max_s must be at least sim_resend_min_s")
        if self.escalate_second_s <= self.escalate_first_s:
            raise ValueError("escalate_second_s must be later than escalate_first_s")
        try:
            ZoneInfo(self.timezone)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(f"timezone {self.timezone!r} is not an IANA time zone name") from None
        if self.night_start == self.night_end:
            raise ValueError("night_start and night_end must differ")
        if self.audit_signing_key_file is not None and self.audit_checkpoint_file is None:
            raise ValueError("audit_signing_key_file needs audit_checkpoint_file: where the signed checkpoints go")
        if self.leader_ttl_s <= 2 * self.leader_check_s:
            raise ValueError("leader_ttl_s must be more than twice leader_check_s")
        for service in ("gateway", "receiver"):
            cert, key = getattr(self, f"{service}_tls_certfile"), getattr(self, f"{service}_tls_keyfile")
            if (cert is None) != (key is None):
                raise ValueError(f"{service}_tls_certfile and {service}_tls_keyfile go together: set both or neither")
        for code, name in self.dc09_code_map.items():
            if not re.match(r"^(SIA:[A-Z]{2}|CID:[0-9]{3})$", code):
                raise ValueError(f"dc09_code_map: {code!r} is not SIA:XX or CID:NNN")
            if name != "test" and name not in {t.value for t in AlarmType}:
                raise ValueError(f"dc09_code_map: {name!r} is not an alarm type or 'test'")
        return self

    def takeover_window_s(self) -> float:
        """How long after a new gateway leader got the lock a heartbeat may still have been heard by the old one
        and by nobody else (``leader_takeover_grace_s``, or worked out: docs/architecture.md, "Several
        instances"). A hung leader's lock is freed ``leader_ttl_s`` after its last election query, which it
        sent at most about ``3 x leader_check_s`` before it hung; the broker drops its connections
        ``1.5 x gateway_mqtt_keepalive_s`` after its last packet; 1 s for the broker's timer and a late loop."""
        if self.leader_takeover_grace_s is not None:
            return self.leader_takeover_grace_s
        hung = 1.5 * self.gateway_mqtt_keepalive_s + 3 * self.leader_check_s - self.leader_ttl_s + 1.0
        return max(0.0, hung)

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings, dotenv_settings]
        path = _config_file()
        if path.is_file():
            sources.append(YamlConfigSettingsSource(settings_cls, yaml_file=path))
        sources.append(file_secret_settings)
        return tuple(sources)


@lru_cache
def get_settings() -> Settings:
    return Settings()
