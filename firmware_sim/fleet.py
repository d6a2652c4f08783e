"""A fleet of simulated devices, optional automatic presses, the local control channel, and fault injection.

Fault injection (docs/simulator.md): ``ScenarioStep``s, from CLI flags (``fault_steps``) or a YAML file
(``load_scenario``), run by ``run_scenario`` against any devices with ``go_silent``/``come_back``/
``lose_mains``/``restore_mains`` (``SimDevice`` and the light-weight ``SwarmDevice``).
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import random
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, Protocol

import structlog

from devices import DeviceType
from firmware_sim.control import parse_press_topic, press_filter, pressed_topic, subscribe_and_wait
from firmware_sim.device import SimDevice
from trygg.mqtt import MqttEndpoint, connect, make_client
from trygg.settings import Settings

log = structlog.get_logger(__name__)

# Repeated in order: a small fleet is mostly pendants with some fall sensors and smoke detectors.
DEFAULT_MIX: tuple[DeviceType, ...] = (
    DeviceType.PENDANT,
    DeviceType.FALL_SENSOR,
    DeviceType.PENDANT,
    DeviceType.SMOKE,
    DeviceType.PENDANT,
)


def device_ids(
    count: int, prefix: str = "sim", mix: Sequence[DeviceType] = DEFAULT_MIX
) -> list[tuple[str, DeviceType]]:
    """Deterministic ids and types, e.g. ``sim-pendant-001``, ``sim-fall_sensor-001``, ``sim-pendant-002``.

    The demo registers the same ids with the gateway.
    """
    if not mix:
        raise ValueError("mix must name at least one device type")
    numbers: dict[DeviceType, int] = {}
    out: list[tuple[str, DeviceType]] = []
    for device_type in itertools.islice(itertools.cycle(mix), count):
        numbers[device_type] = numbers.get(device_type, 0) + 1
        out.append((f"{prefix}-{device_type.value}-{numbers[device_type]:03d}", device_type))
    return out


class Fleet:
    """``count`` SimDevices plus one control client on ``{root}/sim/control/+/press``."""

    def __init__(
        self,
        settings: Settings,
        count: int,
        prefix: str = "sim",
        mix: Sequence[DeviceType] = DEFAULT_MIX,
        *,
        mqtt_url: str | None = None,
        fallback_url: str | None = None,
        heartbeat_interval_s: float = 60.0,
        press_rate_per_min: float | None = None,
        press_every_s: float | None = None,
        cancel_after_s: float | None = None,
    ) -> None:
        self.settings = settings
        # The automatic presses' own clean-up (the demo): a press no operator acknowledged within this time is
        # cancelled on the device, as a person does after a false press. None: they stay until handled.
        self.cancel_after_s = cancel_after_s
        self.mqtt_url = mqtt_url or settings.mqtt_url
        self.root = settings.topic_root
        self.press_rate_per_min = press_rate_per_min
        self.press_every_s = press_every_s
        self.devices: dict[str, SimDevice] = {
            device_id: SimDevice(
                device_id,
                device_type,
                settings,
                mqtt_url=self.mqtt_url,
                fallback_url=fallback_url,
                heartbeat_interval_s=heartbeat_interval_s,
            )
            for device_id, device_type in device_ids(count, prefix, mix)
        }
        self.presses: list[tuple[str, str]] = []  # (device_id, alarm_id), every press made by the fleet
        self.fault_log: list[dict[str, Any]] = []  # the scenario steps run, with the devices they hit
        self._control: Any = None
        self._tasks: list[asyncio.Task[None]] = []
        self._cancels: set[asyncio.Task[None]] = set()

    def run_scenario(self, steps: Sequence[ScenarioStep], seed: int = 0) -> asyncio.Task[None]:
        """Run fault-injection steps in the background (stopped with the fleet); times from now."""
        task = asyncio.create_task(run_scenario(self.devices, steps, seed=seed, log_to=self.fault_log))
        self._tasks.append(task)
        return task

    async def start(self) -> None:
        await asyncio.gather(*(device.start() for device in self.devices.values()))
        await self._start_control()
        if self.press_every_s:
            self._tasks.append(asyncio.create_task(self._press_schedule(self.press_every_s)))
        if self.press_rate_per_min:
            self._tasks.append(asyncio.create_task(self._press_random(self.press_rate_per_min)))
        log.info("fleet.started", devices=len(self.devices), url=self.mqtt_url)

    async def stop(self) -> None:
        for task in [*self._tasks, *self._cancels]:
            task.cancel()
        for task in [*self._tasks, *self._cancels]:
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await task
        self._tasks = []
        client, self._control = self._control, None
        if client is not None:
            with contextlib.suppress(Exception):
                await asyncio.wait_for(client.disconnect(), 2.0)
        await asyncio.gather(*(device.stop() for device in self.devices.values()))
        log.info("fleet.stopped")

    async def __aenter__(self) -> Fleet:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def press(self, device_id: str, alarm_type: str | None = None, text: str | None = None) -> str:
        alarm_id = await self.devices[device_id].press(alarm_type, text)
        self.presses.append((device_id, alarm_id))
        return alarm_id

    # --- automatic presses

    async def _press_schedule(self, every_s: float) -> None:
        """Every ``every_s`` seconds, the next device in turn presses its default alarm."""
        for device_id in itertools.cycle(list(self.devices)):
            await asyncio.sleep(every_s)
            await self._safe_press(device_id)

    async def _press_random(self, rate_per_min: float) -> None:
        """Presses at random (a Poisson process, ``rate_per_min`` for the whole fleet) on random devices."""
        ids = list(self.devices)
        while True:
            await asyncio.sleep(random.expovariate(rate_per_min / 60.0))
            await self._safe_press(random.choice(ids))

    async def _safe_press(self, device_id: str) -> None:
        try:
            alarm_id = await self.press(device_id)
        except Exception as exc:
            log.error("fleet.press_failed", device_id=device_id, error=repr(exc))
            return
        if self.cancel_after_s:
            task = asyncio.create_task(self._cancel_unacknowledged(device_id, alarm_id, self.cancel_after_s))
            self._cancels.add(task)
            task.add_done_callback(self._cancels.discard)

    async def _cancel_unacknowledged(self, device_id: str, alarm_id: str, after_s: float) -> None:
        """Cancel an automatic press after ``after_s`` unless an operator acknowledged it ("help is coming")."""
        await asyncio.sleep(after_s)  # the simulated person's patience, not a synchronisation
        device = self.devices[device_id]
        if alarm_id in device.help_coming:
            return
        try:
            await device.cancel(alarm_id)
            log.info("fleet.press_cancelled", device_id=device_id, alarm_id=alarm_id, after_s=after_s)
        except Exception as exc:
            log.error("fleet.cancel_failed", device_id=device_id, alarm_id=alarm_id, error=repr(exc))

    # --- control channel

    async def _start_control(self) -> None:
        client = make_client(f"trygg-sim-control-{secrets.token_hex(4)}", persistent=False, on_message=self._on_control)
        await connect(
            client,
            MqttEndpoint.from_url(self.mqtt_url, ca_file=self.settings.mqtt_ca_file),
            protocol=self.settings.mqtt_protocol,
        )
        await subscribe_and_wait(client, [press_filter(self.root)])
        self._control = client

    async def _on_control(self, client: Any, topic: str, payload: bytes, qos: int, properties: Any) -> int:
        device_id = parse_press_topic(self.root, topic)
        if device_id is None or device_id not in self.devices:
            return 0  # not ours: another fleet may have it, or the CLI runs it standalone
        request_id: Any = None
        try:
            body = json.loads(payload or b"{}")
            if not isinstance(body, dict):
                raise ValueError("request is not a JSON object")
            request_id = body.get("request_id")
            text = body.get("text")
            alarm_id = await self.press(device_id, body.get("type"), text if isinstance(text, str) else None)
            answer: dict[str, Any] = {"request_id": request_id, "alarm_id": alarm_id}
            log.info("control.pressed", device_id=device_id, alarm_id=alarm_id, request_id=request_id)
        except Exception as exc:
            answer = {"request_id": request_id, "error": str(exc)}
            log.warning("control.press_failed", device_id=device_id, error=str(exc))
        client.publish(pressed_topic(self.root, device_id), json.dumps(answer).encode(), qos=1)
        return 0


# --- fault injection -----------------------------------------------------------------------------------------
Action = Literal["silent", "drop", "flap", "mains_lost", "restore"]
ACTIONS: tuple[str, ...] = ("silent", "drop", "flap", "mains_lost", "restore")


class FaultableDevice(Protocol):
    device_id: str

    async def go_silent(self, drop_connection: bool = False) -> None: ...

    async def come_back(self) -> None: ...

    def lose_mains(self) -> None: ...

    def restore_mains(self) -> None: ...


@dataclass(frozen=True, slots=True)
class ScenarioStep:
    """At ``at_s`` seconds after the start, apply ``action`` to the devices selected.

    Selection (first that is set): ``devices`` (ids), ``prefix`` (ids starting with it: an "area"),
    ``fraction`` (0-1 of the fleet, a seeded random sample), ``count`` (N devices, seeded sample); none: all.
    ``silent`` keeps the connection unless ``drop_connection``; ``drop`` drops it (the will fires);
    ``flap`` drops and reconnects ``flaps`` times, ``flap_period_s`` per cycle; ``restore`` brings devices
    back and restores mains.
    """

    at_s: float
    action: Action
    devices: tuple[str, ...] = ()
    prefix: str | None = None
    fraction: float | None = None
    count: int | None = None
    drop_connection: bool = False
    flaps: int = 3
    flap_period_s: float = 10.0

    def __post_init__(self) -> None:
        if self.action not in ACTIONS:
            raise ValueError(f"unknown action {self.action!r}; one of {', '.join(ACTIONS)}")
        if self.at_s < 0:
            raise ValueError("at must be >= 0")
        if self.fraction is not None and not 0 <= self.fraction <= 1:
            raise ValueError("fraction must be between 0 and 1")

    def select(self, all_ids: Sequence[str], seed: int = 0) -> list[str]:
        ordered = sorted(all_ids)
        if self.devices:
            known = set(ordered)
            return [d for d in self.devices if d in known]
        if self.prefix is not None:
            return [d for d in ordered if d.startswith(self.prefix)]
        rng = random.Random(f"{seed}:{self.at_s}:{self.action}")
        if self.fraction is not None:
            return rng.sample(ordered, round(self.fraction * len(ordered)))
        if self.count is not None:
            return rng.sample(ordered, min(self.count, len(ordered)))
        return ordered


def _step_from(raw: Mapping[str, Any]) -> ScenarioStep:
    if not isinstance(raw, Mapping):
        raise ValueError(f"a scenario step must be a mapping, not {raw!r}")
    known = {"at", "action", "devices", "prefix", "area", "fraction", "count", "drop_connection", "flaps", "period"}
    unknown = set(raw) - known
    if unknown:
        raise ValueError(f"unknown keys in scenario step: {', '.join(sorted(unknown))}")
    return ScenarioStep(
        at_s=float(raw.get("at", 0)),
        action=raw["action"],
        devices=tuple(str(d) for d in raw.get("devices") or ()),
        prefix=raw.get("prefix", raw.get("area")),
        fraction=float(raw["fraction"]) if raw.get("fraction") is not None else None,
        count=int(raw["count"]) if raw.get("count") is not None else None,
        drop_connection=bool(raw.get("drop_connection", False)),
        flaps=int(raw.get("flaps", 3)),
        flap_period_s=float(raw.get("period", 10.0)),
    )


def parse_scenario(data: Any) -> list[ScenarioStep]:
    """``{"steps": [{"at": 30, "action": "silent", "fraction": 0.1}, ...]}`` or a bare list of steps."""
    steps = data.get("steps") if isinstance(data, Mapping) else data
    if not isinstance(steps, list):
        raise ValueError("a scenario is a list of steps (or a mapping with 'steps')")
    return sorted((_step_from(raw) for raw in steps), key=lambda st: st.at_s)


def load_scenario(path: Path | str) -> list[ScenarioStep]:
    import yaml

    return parse_scenario(yaml.safe_load(Path(path).read_text()))


def fault_steps(
    *, silent: int = 0, flap: int = 0, drop_group: str | None = None, at_s: float = 30.0, drop_connection: bool = False
) -> list[ScenarioStep]:
    """The CLI's ``--silent N``, ``--flap N`` and ``--drop-group AREA_OR_FRACTION`` as scenario steps."""
    steps: list[ScenarioStep] = []
    if silent:
        steps.append(ScenarioStep(at_s, "silent", count=silent, drop_connection=drop_connection))
    if flap:
        steps.append(ScenarioStep(at_s, "flap", count=flap))
    if drop_group:
        try:
            fraction = float(drop_group)
        except ValueError:
            steps.append(ScenarioStep(at_s, "drop", prefix=drop_group))
        else:
            steps.append(ScenarioStep(at_s, "drop", fraction=fraction))
    return steps


async def _flap(device: FaultableDevice, flaps: int, period_s: float) -> None:
    for _ in range(flaps):
        await device.go_silent(drop_connection=True)
        await asyncio.sleep(period_s / 2)
        await device.come_back()
        await asyncio.sleep(period_s / 2)


async def apply_step(
    devices: Mapping[str, FaultableDevice], step: ScenarioStep, selected: Sequence[str]
) -> list[asyncio.Task[None]]:
    """Apply one step to the selected ids present in ``devices``; flaps run on as returned tasks."""
    here = [devices[d] for d in selected if d in devices]
    if step.action in ("silent", "drop"):
        drop = step.action == "drop" or step.drop_connection
        await asyncio.gather(*(d.go_silent(drop_connection=drop) for d in here))
    elif step.action == "mains_lost":
        for d in here:
            d.lose_mains()
    elif step.action == "restore":
        for d in here:
            d.restore_mains()
        await asyncio.gather(*(d.come_back() for d in here))
    elif step.action == "flap":
        return [asyncio.create_task(_flap(d, step.flaps, step.flap_period_s)) for d in here]
    return []


async def run_scenario(
    devices: Mapping[str, FaultableDevice],
    steps: Sequence[ScenarioStep],
    *,
    all_ids: Sequence[str] | None = None,
    seed: int = 0,
    log_to: list[dict[str, Any]] | None = None,
    clock: Callable[[], float] = time.monotonic,
) -> None:
    """Run the steps at their times (from now). ``all_ids``: the whole fleet's ids when ``devices`` is only
    this process's part of it, so every part selects the same devices."""
    start = clock()
    ids = list(all_ids) if all_ids is not None else list(devices)
    running: list[asyncio.Task[None]] = []
    try:
        for step in sorted(steps, key=lambda st: st.at_s):
            await asyncio.sleep(max(0.0, start + step.at_s - clock()))
            selected = step.select(ids, seed)
            log.warning("scenario.step", at_s=step.at_s, action=step.action, devices=len(selected))
            running += await apply_step(devices, step, selected)
            if log_to is not None:
                log_to.append({"at_s": step.at_s, "action": step.action, "devices": selected, "t": clock() - start})
        if running:
            await asyncio.gather(*running)
    finally:
        for task in running:
            task.cancel()
