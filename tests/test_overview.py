"""The night overview: which period a night is (daylight saving included), what falls in it, and the API."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path

import httpx
import pytest
from sqlalchemy.ext.asyncio import AsyncEngine

from alarm_receiver import queue
from alarm_receiver.db import migrate
from alarm_receiver.overview import figures, load_overview, night_period
from alarm_receiver.schemas import IntakeAlarm
from testing.broker import Broker
from testing.harness import Api, create_user, make_settings, prepare_stores, running_receiver
from trygg.db import create_engine, session_factory

STHLM = "Europe/Stockholm"
EVENING, MORNING = time(20, 0), time(8, 0)


@pytest.mark.parametrize(
    ("night", "since", "until", "hours"),
    [
        # an ordinary winter night: CET, UTC+1
        (date(2026, 11, 22), datetime(2026, 11, 22, 19, tzinfo=UTC), datetime(2026, 11, 23, 7, tzinfo=UTC), 12),
        # clocks go forward at 02:00 on 29 March 2026: the night is an hour shorter
        (date(2026, 3, 28), datetime(2026, 3, 28, 19, tzinfo=UTC), datetime(2026, 3, 29, 6, tzinfo=UTC), 11),
        # clocks go back at 03:00 on 25 October 2026: an hour longer
        (date(2026, 10, 24), datetime(2026, 10, 24, 18, tzinfo=UTC), datetime(2026, 10, 25, 7, tzinfo=UTC), 13),
    ],
)
def test_night_period_in_local_time(night: date, since: datetime, until: datetime, hours: int) -> None:
    got = night_period(night, STHLM, EVENING, MORNING)
    assert got == (since, until)
    assert got[1] - got[0] == timedelta(hours=hours)


def test_a_shift_within_one_day() -> None:
    since, until = night_period(date(2026, 6, 1), STHLM, time(6, 0), time(14, 0))
    assert (since, until) == (datetime(2026, 6, 1, 4, tzinfo=UTC), datetime(2026, 6, 1, 12, tzinfo=UTC))


def _alarm(alarm_id: str, at: datetime, type_: str = "fall", client: str = "c1") -> IntakeAlarm:
    return IntakeAlarm(
        kind="alarm",
        device_id=f"dev-{client}-{alarm_id}",  # one device each: a device's open alarm would collapse its next
        alarm_id=alarm_id,
        type=type_,
        priority=8,
        device_ts=at,
        stored_at=at,
        details={"client_ref": client},
    )


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncEngine:
    eng = create_engine(f"sqlite+aiosqlite:///{tmp_path}/rx.db")
    await migrate(eng)
    return eng


async def test_only_the_nights_items_are_counted(engine: AsyncEngine) -> None:
    since, until = night_period(date(2026, 3, 28), STHLM, EVENING, MORNING)
    sessions = session_factory(engine)
    try:
        async with sessions.begin() as s:
            await queue.ingest(
                s,
                [
                    _alarm("before", since - timedelta(seconds=1)),
                    _alarm("first", since),
                    _alarm("dst-hour", datetime(2026, 3, 29, 1, 30, tzinfo=UTC), "assistance", "c2"),
                    _alarm("last", until - timedelta(seconds=1)),
                    _alarm("after", until),
                ],
            )
            # "first"'s device presses again while it is open: collapsed into it, counted as a repeat (issue 8)
            again = _alarm("again", since + timedelta(minutes=5))
            await queue.ingest(s, [again.model_copy(update={"device_id": "dev-c1-first"})])
        async with sessions() as s:
            got = await load_overview(s, since, until)
        assert got["total"] == 3 and got["repeats"] == 1
        repeats = {i["id"]: i["repeats"] for c in got["clients"] for i in c["items"]}
        assert sorted(repeats.values()) == [0, 0, 1]
        assert got["by_type"] == {"fall": 2, "assistance": 1}
        assert {c["client"]: [i["type"] for i in c["items"]] for c in got["clients"]} == {
            "c1": ["fall", "fall"],
            "c2": ["assistance"],
        }
    finally:
        await engine.dispose()


async def test_api_by_night_and_bad_requests(broker: Broker, tmp_path: Path) -> None:
    s = make_settings(tmp_path, broker.url)
    await prepare_stores(s)
    await create_user(s, "op", "operator")
    await create_user(s, "pat", "patrol")
    async with running_receiver(s):
        api = Api(s)
        await api.login("op")
        try:
            r = await api.http.get("/api/v1/overview/night", params={"night": "2026-10-24"})
            assert r.status_code == 200
            body = r.json()
            assert (body["since"], body["until"]) == ("2026-10-24T18:00:00Z", "2026-10-25T07:00:00Z")
            for bad in ({"night": "2026-13-01"}, {"night": "tonight"}, {"hours": "0"}, {"hours": "49"}):
                r = await api.http.get("/api/v1/overview/night", params=bad)
                assert r.status_code == 422, bad
            async with httpx.AsyncClient(base_url=s.receiver_url) as anon:
                assert (await anon.get("/api/v1/overview/night")).status_code == 401
            await api.login("pat")
            assert (await api.http.get("/api/v1/overview/night")).status_code == 403
        finally:
            await api.close()


def test_figures_median_n_and_the_values_when_few() -> None:
    # n = 2 (0.26 s and 101 s): the median is their mean, not the lower one ("median 0 s" before)
    two = figures([101.0, 0.26])
    assert two == {"n": 2, "p50": 50.6, "p90": 101.0, "values": [0.3, 101.0]}
    assert figures([5.0, 1.0, 3.0])["p50"] == 3.0  # odd n: the middle value
    assert figures([]) == {"n": 0, "p50": None, "p90": None, "values": []}
    many = figures([float(i) for i in range(1, 21)])
    assert many["n"] == 20 and many["p50"] == 10.5 and many["p90"] == 18.0 and "values" not in many
