"""Supervision rules with a hand-driven clock: deadlines, last will, hysteresis, area outages, restarts."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from devices import Heartbeat
from gateway.fleet.supervision import (
    DeviceBackOnline,
    DeviceState,
    RaiseAreaOutage,
    RaiseOffline,
    ResolveAreaOutage,
    ResolveOffline,
    Supervisor,
)
from trygg.settings import Settings


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0
        self.start = datetime(2026, 11, 23, 22, 0, tzinfo=UTC)

    def mono(self) -> float:
        return self.t

    def now(self) -> datetime:
        return self.start + timedelta(seconds=self.t - 1000.0)

    def advance(self, seconds: float) -> None:
        self.t += seconds


HB = Heartbeat.model_validate_json(b'{"ts": "2026-11-23T22:00:00Z", "battery_pct": 80}')


def make(clock: Clock, **settings: Any) -> Supervisor:
    base: dict[str, Any] = {"online_settle_s": 0, "area_outage_min_devices": 5}
    return Supervisor(Settings(**(base | settings)), mono=clock.mono, now=clock.now)


def track(sup: Supervisor, device_id: str, cls: str = "alarm", area: str = "*") -> None:
    sup.track(DeviceState(device_id, supervision_class=cls, area=area, interval_s=sup.interval_for(cls)))
    assert sup.heartbeat(device_id, HB) == []  # first word: online, nothing to raise


def kinds(actions: list[Any]) -> list[str]:
    return [type(a).__name__ for a in actions]


def test_offline_exactly_after_interval_plus_grace_and_capped_at_180_s() -> None:
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30)
    track(sup, "p1")
    clock.advance(89.9)
    assert sup.tick() == []
    clock.advance(0.2)
    [action] = sup.tick()
    assert isinstance(action, RaiseOffline) and action.device_id == "p1" and 90 <= action.silent_s < 90.2
    # the cap: a 300 s alarm-class interval still reports within 180 s; a camera waits interval + grace
    sup2 = make(clock, heartbeat_interval_alarm_s=300, heartbeat_interval_camera_s=300, heartbeat_grace_s=30)
    track(sup2, "p2")
    track(sup2, "cam", cls="camera")
    clock.advance(180.1)
    assert [a.device_id for a in sup2.tick() if isinstance(a, RaiseOffline)] == ["p2"]
    clock.advance(150)
    assert [a.device_id for a in sup2.tick() if isinstance(a, RaiseOffline)] == ["cam"]


def test_last_will_is_offline_at_once_and_a_return_resolves() -> None:
    clock = Clock()
    sup = make(clock)
    track(sup, "p1")
    assert sup.status("p1", online=False) == []  # emitted by the next tick (at most a second later)
    [raised] = sup.tick()
    assert isinstance(raised, RaiseOffline) and "last will" in raised.reason
    clock.advance(5)
    back = sup.heartbeat("p1", HB)
    assert kinds(back) == ["DeviceBackOnline", "ResolveOffline"]
    assert isinstance(back[1], ResolveOffline) and back[1].alarm_id == raised.alarm_id


def test_flapping_device_keeps_one_alarm_until_it_settles() -> None:
    clock = Clock()
    sup = make(clock, online_settle_s=60)
    track(sup, "flappy")
    sup.status("flappy", online=False)
    raised = [a for a in sup.tick() if isinstance(a, RaiseOffline)]
    for _ in range(10):  # offline/online every few seconds
        clock.advance(3)
        assert kinds(sup.heartbeat("flappy", HB)) == ["DeviceBackOnline"]
        clock.advance(3)
        assert sup.status("flappy", online=False) == []  # the same alarm stays open: a flap
        assert sup.tick() == []
    assert len(raised) == 1 and sup.states["flappy"].flaps == 10
    sup.heartbeat("flappy", HB)
    clock.advance(59)
    sup.heartbeat("flappy", HB)
    assert sup.tick() == []
    clock.advance(1.5)
    sup.heartbeat("flappy", HB)
    [resolved] = sup.tick()
    assert isinstance(resolved, ResolveOffline) and resolved.alarm_id == raised[0].alarm_id


def test_thirty_percent_of_an_area_silent_is_one_area_outage() -> None:
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30, area_outage_share=0.3)
    for i in range(20):
        track(sup, f"north-{i}", area="north")
    for i in range(10):
        track(sup, f"south-{i}", area="south")
    silent = [f"north-{i}" for i in range(7)]  # 35 % of the north
    actions: list[Any] = []
    for _ in range(12):  # 120 s: the others keep talking, the silent ones pass their deadlines
        clock.advance(10)
        for device_id in sup.states:
            if device_id not in silent:
                sup.heartbeat(device_id, HB)
        actions += sup.tick()
    areas = [a for a in actions if isinstance(a, RaiseAreaOutage)]
    assert len(areas) == 1 and areas[0].area == "north" and set(areas[0].device_ids) == set(silent)
    raised = [a for a in actions if isinstance(a, RaiseOffline)]
    resolved = [a for a in actions if isinstance(a, ResolveOffline)]
    # they went silent together: no alarm of their own, only the area's
    assert raised == [] and resolved == []
    # the area comes back: the outage resolves, nobody is left with an alarm of their own
    clock.advance(1)
    for device_id in silent:
        sup.heartbeat(device_id, HB)
    [done] = [a for a in sup.tick() if isinstance(a, ResolveAreaOutage)]
    assert done.alarm_id == areas[0].alarm_id and "7 of 7" in done.outcome


def test_a_few_silent_devices_are_not_an_area_outage() -> None:
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30)
    for i in range(20):
        track(sup, f"d{i}")
    actions: list[Any] = []
    for _ in range(12):
        clock.advance(10)
        for i in range(3, 20):
            sup.heartbeat(f"d{i}", HB)
        actions += sup.tick()
    assert kinds(actions) == ["RaiseOffline"] * 3


WINDOW_S = Settings().takeover_window_s()  # 14 s with the defaults


def test_default_takeover_window_is_the_hung_leader_bound() -> None:
    """1.5 x the gateway's 10 s keep-alive (the broker's drop of a hung gateway) + 3 x the 1 s election round
    - the 5 s ttl (the hung leader's lock freed) + 1 s; an explicit grace replaces it."""
    assert WINDOW_S == 14.0
    assert Settings(leader_takeover_grace_s=3).takeover_window_s() == 3.0
    assert Settings(gateway_mqtt_keepalive_s=2, leader_ttl_s=9).takeover_window_s() == 0.0


def _takeover(clock: Clock, sup: Supervisor, *states: DeviceState) -> float:
    """The old leader is killed at ``clock``'s now; the new one gets the lock 1 s later and acts after 3 s more
    (``V``), restoring ``states`` as the store has them. Returns the kill's monotonic time."""
    killed = clock.mono()
    clock.advance(4)
    for st in states:
        sup.track(st)
    sup.hold_deadlines(killed + 1 + WINDOW_S)
    return killed


def ticks(clock: Clock, sup: Supervisor, seconds: float, step: float = 0.5) -> list[tuple[str, float]]:
    raised: list[tuple[str, float]] = []
    for _ in range(int(seconds / step)):
        clock.advance(step)
        raised += [(a.device_id, clock.mono()) for a in sup.tick() if isinstance(a, RaiseOffline)]
    return raised


def test_a_takeover_gives_a_device_whose_heartbeat_died_with_the_leader_its_full_allowance() -> None:
    """The old leader heard p1 just before its kill and died before sharing it: the new leader knows only the
    heartbeat before (60 s earlier). p1's next one, 25 s late (inside its 30 s grace), must not raise it."""
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30)
    known = clock.now() - timedelta(seconds=60)  # p1's heartbeat before the one that died, as shared
    p1 = DeviceState("p1", status="online", last_seen=known, interval_s=60)
    killed = _takeover(clock, sup, p1)
    assert ticks(clock, sup, 60 + 25 - 4) == []  # up to the lost heartbeat's next, 25 s late
    assert sup.heartbeat("p1", HB) == []  # p1 is still online
    assert ticks(clock, sup, 80) == [] and clock.mono() - killed > 160


def test_a_device_silent_just_before_a_takeover_is_raised_at_its_deadline_plus_the_unknown_window() -> None:
    """A device whose last heartbeat (shared by the old leader) came 0.5 s before the kill is raised once, at the
    later of its own deadline and the unknown window's end plus its deadline (kill + 1 s + WINDOW_S + 90 s): late
    by the unknown window's length after its heartbeat, 15.5 s, not by the 135 s grace of before; a device silent
    since long before is raised at the same time, not held for a fixed grace on top."""
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30)
    just = DeviceState("just", status="online", last_seen=clock.now() - timedelta(seconds=0.5), interval_s=60)
    long = DeviceState("long", status="online", last_seen=clock.now() - timedelta(seconds=80), interval_s=60)
    killed = _takeover(clock, sup, just, long)
    raised = ticks(clock, sup, 200)
    due = killed + 1 + WINDOW_S + 90
    assert [d for d, _ in raised] == ["long", "just"] or [d for d, _ in raised] == ["just", "long"]
    assert all(due <= t <= due + 0.5 for _, t in raised), (raised, due)
    assert due - (killed - 0.5 + 90) == 15.5  # "just"'s own deadline, and how late it comes


def test_a_takeover_holds_deadlines_also_for_devices_the_old_leader_had_not_flushed() -> None:
    """A device the old leader had not written to device_health yet (just registered, a fleet just started) is
    unknown to the new leader; a heartbeat a follower shared 80 s ago makes it online. Its newer heartbeats may have
    died with the old leader: it is not judged before a full deadline (90 s) from the unknown window's end."""
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30)
    killed = _takeover(clock, sup, DeviceState("new", interval_s=60))  # status unknown
    sup.heartbeat("new", HB, at=clock.now() - timedelta(seconds=80))
    due = killed + 1 + WINDOW_S + 90
    raised = ticks(clock, sup, due - clock.mono() - 0.5)
    assert raised == []
    clock.advance(1)
    [action] = sup.tick()  # really silent: raised once the hold is over, with how long it has been silent
    assert isinstance(action, RaiseOffline) and action.device_id == "new" and action.silent_s > 180


def test_a_device_heard_after_the_unknown_window_keeps_its_own_deadline() -> None:
    """A heartbeat heard after the window's end (by a live gateway) says more than any lost one could: the device
    is judged on its own deadline from it."""
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30)
    killed = _takeover(clock, sup, DeviceState("p", status="online", last_seen=clock.now(), interval_s=60))
    clock.advance(1 + WINDOW_S)
    assert sup.heartbeat("p", HB) == []
    heard = clock.mono()
    raised = ticks(clock, sup, 100)
    assert len(raised) == 1 and heard + 90 <= raised[0][1] <= heard + 90.5 and heard > killed + 1 + WINDOW_S


def test_restart_gives_online_devices_a_fresh_deadline_but_remembers_the_silent() -> None:
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30)
    # state as flushed before the restart: one device heard 10 s ago, one heard 10 minutes ago
    recent = DeviceState("recent", status="online", last_seen=clock.now() - timedelta(seconds=10), interval_s=60)
    silent = DeviceState("silent", status="online", last_seen=clock.now() - timedelta(minutes=10), interval_s=60)
    down = DeviceState("down", status="offline", open_alarm_id="offline-x", last_seen=clock.now(), interval_s=60)
    for st in (recent, silent, down):
        sup.track(st, restarted=True)
    assert sup.tick() == []  # not the whole fleet declared offline at start
    clock.advance(85)
    sup.heartbeat("recent", HB)
    assert sup.tick() == []
    clock.advance(6)
    [raised] = sup.tick()  # the device silent since before the restart, one deadline after it
    assert isinstance(raised, RaiseOffline) and raised.device_id == "silent"
    back = sup.heartbeat("down", HB)  # the alarm open before the restart is still resolved
    assert kinds(back) == ["DeviceBackOnline", "ResolveOffline"] and back[1].alarm_id == "offline-x"  # type: ignore[union-attr]


def test_unknown_devices_are_not_supervised() -> None:
    clock = Clock()
    sup = make(clock)
    assert sup.heartbeat("nobody", HB) == []
    sup.track(DeviceState("never-heard", interval_s=60))
    clock.advance(1000)
    assert sup.tick() == []
    assert isinstance(DeviceBackOnline("x", 1.0), DeviceBackOnline)


def test_devices_alarmed_before_the_area_threshold_are_grouped_under_it() -> None:
    clock = Clock()
    sup = make(clock, heartbeat_interval_alarm_s=60, heartbeat_grace_s=30, area_outage_share=0.3)
    for i in range(20):
        track(sup, f"d{i}")
    early = sup.status("d0", online=False) + sup.tick()  # one device drops alone: its own alarm
    [own] = [a for a in early if isinstance(a, RaiseOffline)]
    clock.advance(5)
    for i in range(1, 7):  # then six more within the window: 7 of 20
        sup.status(f"d{i}", online=False)
    actions = sup.tick()
    [area] = [a for a in actions if isinstance(a, RaiseAreaOutage)]
    assert set(area.device_ids) == {f"d{i}" for i in range(7)}
    assert [(a.alarm_id, "grouped" in a.outcome) for a in actions if isinstance(a, ResolveOffline)] == [
        (own.alarm_id, True)
    ]
    assert not [a for a in actions if isinstance(a, RaiseOffline)]


def test_a_device_without_mains_says_so_and_is_never_mains_lost() -> None:
    battery_only = Heartbeat.model_validate_json(b'{"ts": "2026-11-23T22:00:00Z", "has_mains": false}')
    assert battery_only.has_mains is False and battery_only.mains is None
    # "no mains at all" and "mains on" contradict each other: refused like any malformed heartbeat
    try:
        Heartbeat.model_validate_json(b'{"ts": "2026-11-23T22:00:00Z", "has_mains": false, "mains": true}')
    except ValueError as exc:
        assert "has_mains" in str(exc)
    else:
        raise AssertionError("a device without mains cannot be on mains")
    clock = Clock()
    sup = make(clock)
    track(sup, "pendant")
    # older firmware said mains: false for a battery-only device; its has_mains: false now wins over it
    sup.heartbeat("pendant", Heartbeat.model_validate_json(b'{"ts": "2026-11-23T22:00:00Z", "mains": false}'))
    assert sup.states["pendant"].mains is False
    sup.heartbeat("pendant", battery_only)
    state = sup.states["pendant"]
    assert state.has_mains is False and state.mains is None
    # a heartbeat that leaves has_mains out does not make the device one with mains again
    sup.heartbeat("pendant", Heartbeat.model_validate_json(b'{"ts": "2026-11-23T22:00:00Z", "mains": false}'))
    assert state.has_mains is False and state.mains is None
