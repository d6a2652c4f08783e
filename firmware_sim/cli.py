"""``trygg sim``: run a fleet of simulated devices, or press a button on one."""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import re
import resource
import signal
from pathlib import Path
from typing import Any

import typer

from devices import AckStatus, DeviceType
from firmware_sim.control import ControlError, PressResult, press_via_control
from firmware_sim.device import SimDevice
from firmware_sim.fleet import Fleet, ScenarioStep, fault_steps, load_scenario, run_scenario
from firmware_sim.swarm import Swarm, raise_nofile, rss_kb
from trygg.settings import Settings, get_settings

app = typer.Typer(
    help="Simulated social-alarm devices (pendants, fall sensors, smoke detectors) over MQTT.",
    no_args_is_help=True,
)

_TYPE_IN_ID = re.compile(r"-(" + "|".join(t.value for t in DeviceType) + r")-")


def guess_device_type(device_id: str) -> DeviceType:
    """The type named in a fleet id such as ``sim-fall_sensor-001``; a pendant otherwise."""
    found = _TYPE_IN_ID.search(f"-{device_id}-")
    return DeviceType(found.group(1)) if found else DeviceType.PENDANT


async def run_fleet(
    settings: Settings,
    count: int,
    prefix: str,
    *,
    press_every_s: float | None,
    press_rate_per_min: float | None,
    mqtt_url: str | None,
    heartbeat_interval_s: float,
    steps: list[ScenarioStep] | None = None,
) -> None:
    fleet = Fleet(
        settings,
        count,
        prefix,
        mqtt_url=mqtt_url,
        heartbeat_interval_s=heartbeat_interval_s,
        press_every_s=press_every_s,
        press_rate_per_min=press_rate_per_min,
    )
    stop = _stop_event()
    await fleet.start()
    typer.echo(f"fleet of {count} running on {fleet.mqtt_url}: {', '.join(fleet.devices)}")
    if steps:
        fleet.run_scenario(steps)
    try:
        await stop.wait()
    finally:
        await fleet.stop()


def _stop_event() -> asyncio.Event:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):  # Ctrl-C or a service stop: stop the devices cleanly
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    return stop


FD_RESERVE = 64  # file descriptors a swarm process keeps for other things than its connections


def plan_processes(count: int, processes: int | None) -> int:
    """How many swarm processes: as asked, else enough for RLIMIT_NOFILE's hard limit (at least one)."""
    if processes:
        return processes
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per = count if hard == resource.RLIM_INFINITY else max(1, hard - FD_RESERVE)
    return max(1, math.ceil(count / per))


async def run_swarm(
    settings: Settings,
    count: int,
    prefix: str,
    *,
    mqtt_url: str | None,
    heartbeat_interval_s: float,
    steps: list[ScenarioStep] | None = None,
    part: tuple[int, int] = (0, 1),
    concurrency: int = 200,
    spread_s: float | None = None,
    battery_drain_pct_per_h: float = 0.5,
    stop: Any = None,
) -> None:
    """One process's part of a light-weight swarm, until SIGINT/SIGTERM (or ``stop``, an mp.Event, is set)."""
    raise_nofile(count // part[1] + FD_RESERVE)
    swarm = Swarm(
        settings,
        count,
        prefix,
        mqtt_url=mqtt_url,
        heartbeat_interval_s=heartbeat_interval_s,
        concurrency=concurrency,
        spread_s=spread_s,
        part=part,
        battery_drain_pct_per_h=battery_drain_pct_per_h,
    )
    done = _stop_event()
    await swarm.start()
    typer.echo(
        f"swarm part {part[0] + 1}/{part[1]}: {len(swarm.devices) - len(swarm.failed)}/{len(swarm.devices)} "
        f"devices connected to {swarm.mqtt_url} in {swarm.connect_s:.1f} s, RSS {rss_kb() // 1024} MB"
    )
    tasks: list[asyncio.Task[None]] = []
    if steps:
        tasks.append(asyncio.create_task(run_scenario(swarm.devices, steps, all_ids=swarm.all_ids)))
    if stop is not None:

        async def watch() -> None:
            while not await asyncio.to_thread(stop.wait, 0.5):  # an mp.Event: wait in a thread
                pass
            done.set()

        tasks.append(asyncio.create_task(watch()))
    try:
        await done.wait()
    finally:
        for task in tasks:
            task.cancel()
        await swarm.stop()


def _swarm_process(kwargs: dict[str, Any]) -> None:
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(run_swarm(get_settings(), **kwargs))


def run_swarm_processes(processes: int, stop: Any, **kwargs: Any) -> None:
    """The swarm split over ``processes`` processes (each below RLIMIT_NOFILE), until ``stop`` is set."""
    ctx = mp.get_context("spawn")
    procs = [
        ctx.Process(target=_swarm_process, args=({**kwargs, "part": (k, processes), "stop": stop},), daemon=False)
        for k in range(processes)
    ]
    for proc in procs:
        proc.start()
    try:
        for proc in procs:
            proc.join()
    finally:
        stop.set()
        for proc in procs:
            proc.join(15)
            if proc.is_alive():
                proc.terminate()


async def press_standalone(
    settings: Settings,
    device_id: str,
    device_type: DeviceType,
    alarm_type: str | None,
    *,
    mqtt_url: str | None = None,
    wait: bool = True,
    timeout_s: float = 30.0,
) -> PressResult:
    """Run the device on its own (its own outbox), press, and wait for ``stored`` or ``rejected``.

    A one-shot connection (``announce=False``): it says nothing of the device's status, so the gateway's
    supervision raises no ``device_offline`` when it disconnects (cleanly) afterwards."""
    device = SimDevice(device_id, device_type, settings, mqtt_url=mqtt_url, announce=False)
    await device.start()
    try:
        alarm_id = await device.press(alarm_type)
        if wait:
            waits = [
                asyncio.create_task(device.wait_for_status(alarm_id, status, timeout_s))
                for status in (AckStatus.STORED, AckStatus.REJECTED)
            ]
            await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
            for task in waits:
                task.cancel()
            await asyncio.gather(*waits, return_exceptions=True)
        return PressResult(alarm_id=alarm_id, via="standalone", statuses=[s.value for s in device.statuses[alarm_id]])
    finally:
        await device.stop()


@app.command()
def run(
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
        kwargs: dict[str, Any] = {
            "count": count,
            "prefix": prefix,
            "mqtt_url": mqtt_url,
            "heartbeat_interval_s": heartbeat_interval,
            "steps": steps,
            "concurrency": concurrency,
            "spread_s": spread,
            "battery_drain_pct_per_h": battery_drain,
        }
        n = plan_processes(count, processes)
        with contextlib.suppress(KeyboardInterrupt):
            if n == 1:
                asyncio.run(run_swarm(settings, **kwargs))
            else:
                limit = resource.getrlimit(resource.RLIMIT_NOFILE)
                typer.echo(f"{count} devices over {n} processes (RLIMIT_NOFILE soft/hard {limit})")
                stop = mp.get_context("spawn").Event()
                signal.signal(signal.SIGTERM, lambda *_: stop.set())  # the parts stop cleanly
                run_swarm_processes(n, stop, **kwargs)
        return
    with contextlib.suppress(KeyboardInterrupt):
        asyncio.run(
            run_fleet(
                settings,
                count,
                prefix,
                press_every_s=press_every,
                press_rate_per_min=press_rate,
                mqtt_url=mqtt_url,
                heartbeat_interval_s=heartbeat_interval,
                steps=steps,
            )
        )


@app.command()
def press(
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

    async def go() -> PressResult:
        try:
            result = await press_via_control(
                settings, device_id, alarm_type, mqtt_url=mqtt_url, wait=wait, timeout_s=timeout
            )
        except (OSError, TimeoutError) as exc:  # broker unreachable: the device keeps it in its outbox
            typer.echo(f"control channel unavailable ({exc!r})", err=True)
            result = None
        if result is not None:
            return result
        typer.echo(f"no running fleet has {device_id}: running it standalone", err=True)
        return await press_standalone(
            settings,
            device_id,
            device_type or guess_device_type(device_id),
            alarm_type,
            mqtt_url=mqtt_url,
            wait=wait,
            timeout_s=timeout,
        )

    try:
        result = asyncio.run(go())
    except (ControlError, ValueError) as exc:
        typer.echo(f"error: {exc}", err=True)
        raise typer.Exit(2) from exc
    typer.echo(f"alarm_id={result.alarm_id} via={result.via} statuses={','.join(result.statuses) or '-'}")
    if wait and not result.stored:
        typer.echo(f"alarm {result.alarm_id} was not stored within {timeout} s", err=True)
        raise typer.Exit(1)
