"""The ``trygg`` command: every subcommand mounted on one Typer app (the console script ``trygg``)."""

from __future__ import annotations

from typing import Annotated

import typer

from trygg_cli import services
from trygg_cli.broker import broker_app
from trygg_cli.clients import clients_app
from trygg_cli.common import run, settings
from trygg_cli.consent import consent_app
from trygg_cli.db import db_app
from trygg_cli.dc09 import dc09_app
from trygg_cli.dead_letters import dead_letters_app
from trygg_cli.devices import devices_app
from trygg_cli.log import log_app
from trygg_cli.scaip import scaip_app
from trygg_cli.secrets import secrets_app
from trygg_cli.sim import app as sim_app
from trygg_cli.users import user_app

app = typer.Typer(help="Trygg: social alarms and camera check-ins for municipal elderly care.", no_args_is_help=True)
app.add_typer(devices_app, name="devices")
app.add_typer(user_app, name="user")
app.add_typer(db_app, name="db")
app.add_typer(secrets_app, name="secrets")
app.add_typer(sim_app, name="sim", help="Simulated devices: a fleet, or one button press.")
app.add_typer(consent_app, name="consent", help="Camera check-in consents (case officers).")
app.add_typer(log_app, name="log", help="The supervision log: chain, checkpoints, keys, a client's entries.")
app.add_typer(broker_app, name="broker", help="Device and service credentials, the broker's password file and ACL.")
app.add_typer(dead_letters_app, name="dead-letters", help="Device messages the gateway could not handle.")
app.add_typer(scaip_app, name="scaip")
app.add_typer(dc09_app, name="dc09", help="SIA DC-09 accounts of alarm units (technicians).")
app.add_typer(clients_app, name="clients", help="The client register: CSV import and export.")
app.command()(services.gateway)
app.command()(services.receiver)


@app.command()
def demo(
    devices: Annotated[int, typer.Option(help="simulated devices")] = 6,
    press_every: Annotated[
        float, typer.Option(help="seconds between automatic presses, one at a time across the fleet (0: none)")
    ] = 20.0,
    clear_after: Annotated[
        float, typer.Option(help="cancel an automatic press nobody acknowledged after this many seconds (0: never)")
    ] = 120.0,
    embedded_broker: Annotated[
        bool, typer.Option(help="use the embedded amqtt broker even when Mosquitto is installed")
    ] = False,
) -> None:
    """Run the whole system on this machine: broker, gateway, receiver and a simulated fleet."""
    from trygg_cli.demo import run_demo

    run(
        run_demo(
            settings(),
            devices=devices,
            press_every_s=press_every,
            clear_after_s=clear_after,
            prefer_mosquitto=not embedded_broker,
        )
    )


if __name__ == "__main__":
    app()
