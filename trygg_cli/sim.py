"""``trygg sim``: run a fleet of simulated devices, or press a button on one; the logic is ``firmware_sim.runner``."""

from __future__ import annotations

import contextlib
from pathlib import Path

import typer

from devices import DeviceType
from firmware_sim.control import ControlError
from firmware_sim.fleet import fault_steps, load_scenario
from firmware_sim.runner import press as press_device
from firmware_sim.runner import run_fleet, run_lightweight
from trygg.settings import get_settings
from trygg_cli.common import fail, run

app = typer.Typer(
    help="Simulated social-alarm devices (pendants, fall sensors, smoke detectors) over MQTT.",
    no_args_is_help=True,
)


@app.command("run")
def run_command(
    count: int = typer.Option(5, "--count", "-n", min=1, help="How many devices."),
    prefix: str = typer.Option("sim", "--prefix", help="Device id prefix: {prefix}-{type}-{nnn}."),
    press_every: float | None = typer.Option(
        None, "--press-every", help="Press the next device in turn every N seconds."
    ),
    press_rate: float | None = typer.Option(
        None, "--press-rate", help="Random presses per minute, for the whole fleet."
    ),
    mqtt_url: str | None = typer.Option(None, "--mqtt-url", help="Broker (default: settings mqtt_url)."),
    heartbeat_interval: float = typer.Option(60.0, "--heartbeat-interval", help="Seconds between heartbeats."),
    lightweight: bool = typer.Option(
        False, "--lightweight", help="Heartbeat-only devices, a few KB each (for 20,000): no presses, no outbox."
    ),
    processes: int | None = typer.Option(
        None, "--processes", min=1, help="Light-weight: processes to spread over (default: as RLIMIT_NOFILE needs)."
    ),
    concurrency: int = typer.Option(200, "--concurrency", min=1, help="Light-weight: connects in flight at once."),
    spread: float | None = typer.Option(
        None, "--spread", help="Light-weight: spread the first heartbeats over this many seconds."
    ),
    battery_drain: float = typer.Option(0.5, "--battery-drain", help="Light-weight: battery %/hour off mains."),
    silent: int = typer.Option(0, "--silent", min=0, help="Fault: N random devices go silent at --fault-at."),
    silent_drop: bool = typer.Option(
        False, "--silent-drop/--silent-keep", help="Fault: silent devices drop their connection (the will fires)."
    ),
    flap: int = typer.Option(0, "--flap", min=0, help="Fault: N random devices flap (drop/reconnect) at --fault-at."),
    drop_group: str | None = typer.Option(
        None, "--drop-group", help="Fault: drop a fraction (0.3) or the ids with a prefix (sim-smoke) at --fault-at."
    ),
    fault_at: float = typer.Option(30.0, "--fault-at", help="Seconds after start for the fault flags."),
    scenario: Path | None = typer.Option(None, "--scenario", help="YAML file of timed fault steps."),
) -> None:
    """Run a fleet of simulated devices until Ctrl-C."""
    steps = fault_steps(silent=silent, flap=flap, drop_group=drop_group, at_s=fault_at, drop_connection=silent_drop)
    if scenario is not None:
        steps += load_scenario(scenario)
    settings = get_settings()
    if lightweight:
        if press_every or press_rate:
            raise typer.BadParameter("light-weight devices do not press; drop --press-every/--press-rate")
        run_lightweight(
            settings,
            processes,
            say=typer.echo,
            count=count,
            prefix=prefix,
            mqtt_url=mqtt_url,
            heartbeat_interval_s=heartbeat_interval,
            steps=steps,
            concurrency=concurrency,
            spread_s=spread,
            battery_drain_pct_per_h=battery_drain,
        )
        return
    with contextlib.suppress(KeyboardInterrupt):
        run(
            run_fleet(
                settings,
                count,
                prefix,
                press_every_s=press_every,
                press_rate_per_min=press_rate,
                mqtt_url=mqtt_url,
                heartbeat_interval_s=heartbeat_interval,
                steps=steps,
                say=typer.echo,
            )
        )


@app.command("press")
def press_command(
    device_id: str = typer.Argument(..., help="Device id, e.g. sim-pendant-001."),
    alarm_type: str | None = typer.Option(
        None, "--type", "-t", help="Alarm type (fall, assistance, smoke, ...); default: the device's own."
    ),
    wait: bool = typer.Option(True, "--wait/--no-wait", help="Wait for the gateway's 'stored'."),
    timeout: float = typer.Option(30.0, "--timeout", help="Seconds to wait for 'stored'."),
    mqtt_url: str | None = typer.Option(None, "--mqtt-url", help="Broker (default: settings mqtt_url)."),
    device_type: DeviceType | None = typer.Option(
        None, "--device-type", help="Device type when run standalone (default: guessed from the id)."
    ),
) -> None:
    """Press a button: on a running fleet's device if one answers within 2 s, else standalone."""
    settings = get_settings()
    try:
        result = run(
            press_device(
                settings,
                device_id,
                alarm_type,
                mqtt_url=mqtt_url,
                wait=wait,
                timeout_s=timeout,
                device_type=device_type,
                warn=lambda line: typer.echo(line, err=True),
            )
        )
    except (ControlError, ValueError) as exc:
        raise fail(f"error: {exc}", 2) from exc
    typer.echo(f"alarm_id={result.alarm_id} via={result.via} statuses={','.join(result.statuses) or '-'}")
    if wait and not result.stored:
        raise fail(f"alarm {result.alarm_id} was not stored within {timeout} s")
