"""The night overview: every alarm and task of a period grouped per client (for a timeline), and the shift's
figures: alarms by type, time to acknowledge and to on site (p50/p90, seconds from stored), camera check-ins
done/missed/open/cancelled.

A *night* is named by the local date on which it begins: night 2026-03-28 runs from ``night_start`` that
evening to ``night_end`` the next morning, in the receiver's time zone (Europe/Stockholm by default), so a
daylight-saving night is an hour shorter or longer, as the patrol lived it.
"""

from __future__ import annotations

import math
import statistics
from collections import Counter, defaultdict
from datetime import date, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from alarm_receiver.models import QueueAlarm

MAX_ITEMS = 20000
SMALL_N = 10  # up to this many values, the figures come with the values themselves


def night_period(night: date, tz: str, start: time, end: time) -> tuple[datetime, datetime]:
    """The UTC period of the night that begins on local date ``night`` (``end`` on the next day when it is
    not later than ``start``)."""
    zone = ZoneInfo(tz)
    since = datetime.combine(night, start, zone)
    until = datetime.combine(night if end > start else night + timedelta(days=1), end, zone)
    return since.astimezone(ZoneInfo("UTC")), until.astimezone(ZoneInfo("UTC"))


async def load_overview(session: AsyncSession, since: datetime, until: datetime) -> dict[str, Any]:
    rows = await session.scalars(
        select(QueueAlarm)
        .where(QueueAlarm.stored_at >= since, QueueAlarm.stored_at < until)
        .options(selectinload(QueueAlarm.events))
        .order_by(QueueAlarm.stored_at, QueueAlarm.id)
        .limit(MAX_ITEMS)
    )
    return night_overview(list(rows.all()), since, until)


_CHECKIN_DONE = ("seen_ok", "not_seen", "needs_help")


def percentile(values: list[float], pct: float) -> float | None:
    """Nearest-rank percentile; None for no values."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(1, math.ceil(pct / 100 * len(ordered)))
    return round(ordered[rank - 1], 1)


def median(values: list[float]) -> float | None:
    """The median: the middle value, or the mean of the two middle ones (n = 2: their mean); None for none."""
    return round(statistics.median(values), 1) if values else None


def figures(values: list[float]) -> dict[str, Any]:
    """n, the median (p50), p90 (nearest rank), and the values themselves when there are few
    (``SMALL_N``): a median of two numbers says little without them."""
    out: dict[str, Any] = {"n": len(values), "p50": median(values), "p90": percentile(values, 90)}
    if len(values) <= SMALL_N:
        out["values"] = [round(v, 1) for v in sorted(values)]
    return out


def _first(alarm: QueueAlarm, action: str) -> datetime | None:
    return next((e.at for e in alarm.events if e.action == action), None)


def _checkin_result(alarm: QueueAlarm) -> str:
    outcome = alarm.outcome or ""
    if alarm.state not in ("resolved", "cancelled"):
        return "open"
    if outcome.startswith(_CHECKIN_DONE):
        return "done"
    if outcome.startswith("missed"):
        return "missed"
    return "cancelled"


def night_overview(alarms: list[QueueAlarm], since: datetime, until: datetime) -> dict[str, Any]:
    by_type: Counter[str] = Counter()
    ack_s: list[float] = []
    on_site_s: list[float] = []
    checkins: Counter[str] = Counter({"done": 0, "missed": 0, "open": 0, "cancelled": 0})
    clients: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for a in alarms:
        by_type[a.type] += 1
        acked = _first(a, "acknowledge")
        on_site = _first(a, "on_site")
        closed = _first(a, "resolve") or _first(a, "cancel")
        if acked is not None:
            ack_s.append((acked - a.stored_at).total_seconds())
        if on_site is not None:
            on_site_s.append((on_site - a.stored_at).total_seconds())
        result = None
        if a.type == "checkin_due":
            result = _checkin_result(a)
            checkins[result] += 1
        client = str(a.details.get("client_ref") or a.device_id)
        clients[client].append(
            {
                "id": a.id,
                "type": a.type,
                "priority": a.priority,
                "state": a.state,
                "outcome": a.outcome,
                "outcome_code": a.outcome_code,
                "outcome_params": a.outcome_params,
                "checkin": result,
                "at": a.stored_at,
                "acknowledged_at": acked,
                "on_site_at": on_site,
                "closed_at": closed,
                "assigned_to": a.assigned_to,
                "repeats": a.repeats,
            }
        )
    return {
        "since": since,
        "until": until,
        "total": len(alarms),
        "repeats": sum(a.repeats for a in alarms),  # alarms collapsed into these items (issue 8)
        "by_type": dict(by_type.most_common()),
        "ack_s": figures(ack_s),
        "on_site_s": figures(on_site_s),
        "checkins": dict(checkins),
        "clients": [{"client": k, "items": v} for k, v in sorted(clients.items())],
    }
