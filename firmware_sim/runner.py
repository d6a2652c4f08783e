"""Running simulated devices: a fleet until stopped, a light-weight swarm over several processes, one press.

The ``trygg sim`` command (trygg_cli/sim.py) parses its arguments and calls these.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import multiprocessing as mp
import re
import resource
import signal
from collections.abc import Callable
from typing import Any

from devices import AckStatus, DeviceType
from firmware_sim.control import PressResult, press_via_control
from firmware_sim.device import SimDevice
from firmware_sim.fleet import Fleet, ScenarioStep, run_scenario
from firmware_sim.swarm import Swarm, raise_nofile, rss_kb
from trygg.settings import Settings, get_settings

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
    say: Callable[[str], None] = print,
) -> None:
    """A fleet of full simulated devices until SIGINT/SIGTERM."""
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
    say(f"fleet of {count} running on {fleet.mqtt_url}: {', '.join(fleet.devices)}")
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
    say: Callable[[str], None] = print,
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
    say(
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


def run_lightweight(
    settings: Settings, processes: int | None, say: Callable[[str], None] = print, **swarm: Any
) -> None:
    """A light-weight swarm (``run_swarm``'s arguments), in one process or spread over several, until stopped."""
    n = plan_processes(swarm["count"], processes)
    with contextlib.suppress(KeyboardInterrupt):
        if n == 1:
            asyncio.run(run_swarm(settings, say=say, **swarm))
        else:
            limit = resource.getrlimit(resource.RLIMIT_NOFILE)
            say(f"{swarm['count']} devices over {n} processes (RLIMIT_NOFILE soft/hard {limit})")
            stop = mp.get_context("spawn").Event()
            signal.signal(signal.SIGTERM, lambda *_: stop.set())  # the parts stop cleanly
            run_swarm_processes(n, stop, **swarm)


async def press(
    settings: Settings,
    device_id: str,
    alarm_type: str | None,
    *,
    mqtt_url: str | None = None,
    wait: bool = True,
    timeout_s: float = 30.0,
    device_type: DeviceType | None = None,
    warn: Callable[[str], None] = print,
) -> PressResult:
    """Press on a running fleet's device if one answers within 2 s, else run the device standalone and press."""
    try:
        result = await press_via_control(
            settings, device_id, alarm_type, mqtt_url=mqtt_url, wait=wait, timeout_s=timeout_s
        )
    except (OSError, TimeoutError) as exc:  # broker unreachable: the device keeps it in its outbox
        warn(f"control channel unavailable ({exc!r})")
        result = None
    if result is not None:
        return result
    warn(f"no running fleet has {device_id}: running it standalone")
    return await press_standalone(
        settings,
        device_id,
        device_type or guess_device_type(device_id),
        alarm_type,
        mqtt_url=mqtt_url,
        wait=wait,
        timeout_s=timeout_s,
    )
