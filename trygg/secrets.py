"""Shared secrets: a service refuses to start with a missing, short or publicly known one.

The intake token lets its holder inject or cancel alarms at the receiver, the metrics token reads the services'
figures, and the broker passwords of the services read every device topic. A default printed in the docs or a
short string is no secret; so each service checks the secrets it uses before it starts (``check_service_secrets``)
and names the setting and how to make a good one. ``trygg secrets token`` prints one; ``trygg secrets
compose-env`` writes every secret docker-compose needs (docs/configuration.md, "Secrets").
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from typing import Literal

from pydantic import SecretStr

from trygg.settings import Settings

# Tokens are compared as strings: 32 characters of `token_urlsafe` (or 16 bytes in hex) is 128 bits at least.
MIN_TOKEN_CHARS = 32
# Broker passwords: `trygg broker service-account --generate` makes 32 characters.
MIN_PASSWORD_CHARS = 16
# Values that were ever printed in Trygg's docs, examples or compose file: known to everyone.
KNOWN_DEFAULTS = frozenset(
    {
        "trygg-dev-intake-token-change-me",
        "trygg-compose-intake-token-change-me",
        "scrape-secret-123",
        "bench-metrics-token",
        "trygg",
        "changeme",
        "change-me",
        "secret",
        "password",
    }
)
_PLACEHOLDER_WORDS = ("change-me", "changeme", "change_me", "example", "replace-me")

Service = Literal["gateway", "receiver"]


class InsecureSecret(ValueError):
    """A shared secret is missing, short or publicly known; the message names each setting and the cure."""


def new_token() -> str:
    """A random token of 43 URL-safe characters (256 bits)."""
    return secrets.token_urlsafe(32)


def _problem(value: str, minimum: int) -> str | None:
    lowered = value.strip().lower()
    if lowered in KNOWN_DEFAULTS or any(word in lowered for word in _PLACEHOLDER_WORDS):
        return "is a published default that anyone can read"
    if len(value) < minimum:
        return f"is {len(value)} characters long; at least {minimum} are needed"
    if len(set(value)) < 8:
        return "repeats too few different characters to be a secret"
    return None


def _secret(value: SecretStr | None) -> str | None:
    return value.get_secret_value() if value is not None else None


def secret_problems(settings: Settings, service: Service) -> list[str]:
    """Every problem with the secrets ``service`` uses, one line each (empty: all good)."""
    checks: list[tuple[str, str | None, int, bool]] = [
        ("intake_token", _secret(settings.intake_token), MIN_TOKEN_CHARS, True),
        ("metrics_token", _secret(settings.metrics_token), MIN_TOKEN_CHARS, False),
        (f"{service}_mqtt_password", _secret(getattr(settings, f"{service}_mqtt_password")), MIN_PASSWORD_CHARS, False),
    ]
    problems = []
    for name, value, minimum, required in checks:
        env = f"TRYGG_{name.upper()}"
        if value is None:
            if required:
                problems.append(f"{env} ({name}) is not set")
            continue
        why = _problem(value, minimum)
        if why is not None:
            problems.append(f"{env} ({name}) {why}")
    return problems


def check_service_secrets(settings: Settings, service: Service) -> None:
    """Raise ``InsecureSecret`` naming every bad secret of ``service``; the service must not start then."""
    problems = secret_problems(settings, service)
    if problems:
        raise InsecureSecret(_message(service, problems))


def _message(service: str, problems: Iterable[str]) -> str:
    lines = [f"the {service} refuses to start with these secrets:"]
    lines += [f"  - {p}" for p in problems]
    lines += [
        "Make each one with `trygg secrets token` (or `openssl rand -base64 32`) and give both services the same",
        "intake token; for docker compose, `trygg secrets compose-env` writes them all (docs/configuration.md).",
    ]
    return "\n".join(lines)


def compose_env() -> str:
    """The `.env.compose` that docker-compose.yml reads: every secret of the stack, fresh and random."""
    values = {
        "POSTGRES_PASSWORD": new_token(),  # URL-safe: docker-compose.yml puts it into the database URLs
        "TRYGG_INTAKE_TOKEN": new_token(),
        "TRYGG_METRICS_TOKEN": new_token(),
        "TRYGG_GATEWAY_MQTT_USERNAME": "trygg-gateway",
        "TRYGG_GATEWAY_MQTT_PASSWORD": new_token(),
        "TRYGG_RECEIVER_MQTT_USERNAME": "trygg-receiver",
        "TRYGG_RECEIVER_MQTT_PASSWORD": new_token(),
    }
    header = [
        "# Secrets of the docker-compose stack, written by `trygg secrets compose-env`. Keep this file private",
        "# (mode 0600, never committed); use it with `docker compose --env-file .env.compose up`.",
    ]
    return "\n".join([*header, *(f"{k}={v}" for k, v in values.items())]) + "\n"
