"""``trygg consent``: record, list, show, skip a night, withdraw; the logic is ``gateway.checkin.consent``.

A withdrawal or skipped night made here reaches a running gateway at its next scheduler round
(``checkin_scheduler_period_s``, 1 s): live looks end, the check-ins' queue tasks are closed.
"""

from __future__ import annotations

import asyncio
import getpass
import json
from datetime import date
from typing import Annotated

import typer
from pydantic import ValidationError

from gateway.checkin import consent as consents
from gateway.checkin.consent import ConsentIn
from gateway.errors import GatewayError
from trygg.settings import get_settings
from trygg_cli.common import fail, gateway_store

consent_app = typer.Typer(help="Consents to camera check-ins.", no_args_is_help=True)


def _actor(by: str | None) -> str:
    return by or f"cli:{getpass.getuser()}"


@consent_app.command()
def add(
    client: Annotated[str, typer.Option(help="client reference")],
    camera: Annotated[str, typer.Option(help="camera device id")],
    person: Annotated[list[str], typer.Option(help='"Name:role", role client|cohabitant|legal_representative')],
    basis: Annotated[str, typer.Option(help="e.g. the case officer's decision reference")],
    window: str = "22:00-06:30",
    times: str = "23:00,02:00,05:00",
    max_look: float = 30.0,
    privacy: str = "full",
    audio: bool = False,
    recheck: int = 15,
    escalation: str = "recheck,phone,patrol_visit",
    look_on_alarm: bool = False,
    by: str | None = None,
) -> None:
    """Record a consent."""
    start, _, end = window.partition("-")
    try:
        data = ConsentIn.model_validate(
            {
                "client_ref": client,
                "camera_id": camera,
                "consented_by": [{"name": p.rsplit(":", 1)[0], "role": p.rsplit(":", 1)[-1]} for p in person],
                "basis": basis,
                "window_start": start,
                "window_end": end,
                "times": times.split(","),
                "max_look_s": max_look,
                "privacy": privacy,
                "audio": audio,
                "recheck_min": recheck,
                "escalation": escalation.split(","),
                "look_on_alarm": look_on_alarm,
            }
        )
    except ValidationError as exc:
        raise fail(str(exc)) from exc

    async def run() -> int:
        async with gateway_store(get_settings()) as session:
            c = await consents.create_consent(session, data, actor=_actor(by), default_tz=get_settings().timezone)
            return c.id

    try:
        typer.echo(f"consent {asyncio.run(run())} recorded")
    except GatewayError as exc:
        raise fail(exc.detail) from exc


@consent_app.command("list")
def list_(client: str | None = None, all: bool = False) -> None:
    """Active consents (``--all``: withdrawn ones too)."""

    async def run() -> None:
        async with gateway_store(get_settings()) as session:
            for c in await consents.list_consents(session, client_ref=client, include_withdrawn=all):
                state = "withdrawn" if c.withdrawn_at else "active"
                typer.echo(
                    f"{c.id}\t{c.client_ref}\t{c.camera_id}\t{c.window_start}-{c.window_end}\t{','.join(c.times)}\t{state}"
                )

    asyncio.run(run())


@consent_app.command()
def show(consent_id: int) -> None:
    """One consent, all its terms and skipped nights (JSON)."""

    async def run() -> str:
        async with gateway_store(get_settings()) as session:
            out = await consents.describe(session, await consents.get_consent(session, consent_id))
            return json.dumps(out.model_dump(mode="json"), indent=2, ensure_ascii=False)

    try:
        typer.echo(asyncio.run(run()))
    except GatewayError as exc:
        raise fail(exc.detail) from exc


@consent_app.command()
def skip(consent_id: int, night: str, note: str | None = None, by: str | None = None) -> None:
    """Skip one night (the local date on which its window starts, YYYY-MM-DD)."""

    async def run() -> None:
        async with gateway_store(get_settings()) as session:
            await consents.skip_night(session, consent_id, date.fromisoformat(night), actor=_actor(by), note=note)

    try:
        asyncio.run(run())
    except GatewayError as exc:
        raise fail(exc.detail) from exc
    typer.echo(f"night of {night} skipped")


@consent_app.command()
def withdraw(consent_id: int, reason: str | None = None, by: str | None = None) -> None:
    """Withdraw a consent at once."""

    async def run() -> None:
        async with gateway_store(get_settings()) as session:
            await consents.withdraw_consent(session, consent_id, actor=_actor(by), reason=reason)

    try:
        asyncio.run(run())
    except GatewayError as exc:
        raise fail(exc.detail) from exc
    typer.echo(f"consent {consent_id} withdrawn")
