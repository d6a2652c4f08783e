"""Import and export of client records as CSV, in the column set of docs/clients.md.

One row per client; the call list in ``contactN_*`` columns (N = 1..3, in call order); devices in one column
(``devices``: ``id`` or ``kind:id``, separated by ``;``). Comma or semicolon separated (Excel in Swedish writes
semicolons), UTF-8 with or without a BOM. Booleans: ``ja``/``nej``, ``yes``/``no``, ``true``/``false``, ``1``/``0``
or empty (no).

An import checks every row first and reports each bad one as (row, column, reason), never the value; a file with
any bad row imports nothing. Rows are matched on ``ref``: a known reference replaces that record (its call list
too), a new one creates it; devices listed are linked (a device linked to another client moves, its history
staying there).
"""

from __future__ import annotations

import csv
import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import selectinload

from alarm_receiver.clients import repository
from alarm_receiver.clients.models import Client
from alarm_receiver.clients.schemas import ClientIn

MAX_CONTACTS = 3
BOOL_FIELDS = ("hard_of_hearing", "speech_impaired", "interpreter")
RECORD_COLUMNS = (
    "ref",
    "name",
    "street",
    "postcode",
    "town",
    "floor",
    "entrance",
    "door_code",
    "lat",
    "lon",
    "language",
    *BOOL_FIELDS,
    "practical_notes",
    "health_notes",
    "care_unit",
    "area",
    "key_safe_location",
    "key_safe_code",
    "key_number",
)
CONTACT_FIELDS = ("name", "relation", "phone", "has_key", "call_at_night")
COLUMNS = (
    *RECORD_COLUMNS,
    "devices",
    *(f"contact{n}_{f}" for n in range(1, MAX_CONTACTS + 1) for f in CONTACT_FIELDS),
)
REQUIRED = ("ref", "name")
DEVICE_KINDS = ("device", "camera", "lock")
TRUE = {"ja", "yes", "true", "1", "j", "y"}
FALSE = {"nej", "no", "false", "0", "n", ""}
MAX_ROWS = 20000


@dataclass(frozen=True, slots=True)
class RowError:
    row: int  # the line in the file (the header is row 1)
    column: str  # the column's name, or "" for the whole row
    reason: str  # a code: required, not_a_number, not_yes_no, too_long, bad_phone, duplicate_ref, ...


@dataclass
class ImportReport:
    rows: int = 0
    created: int = 0
    updated: int = 0
    devices_linked: int = 0
    errors: list[RowError] = field(default_factory=list)
    imported: bool = False


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    client: ClientIn
    devices: list[tuple[str, str]]


def _bool(value: str) -> bool | None:
    v = value.strip().lower()
    return True if v in TRUE else False if v in FALSE else None


_REASONS = {
    "string_too_long": "too_long",
    "string_too_short": "required",
    "string_pattern_mismatch": "bad_format",
    "float_parsing": "not_a_number",
    "less_than_equal": "out_of_range",
    "greater_than_equal": "out_of_range",
    "missing": "required",
}


def _parse_row(line: int, raw: dict[str, str], errors: list[RowError]) -> _Row | None:
    before = len(errors)
    data: dict[str, Any] = {}
    for col in RECORD_COLUMNS:
        value = (raw.get(col) or "").strip()
        if col in BOOL_FIELDS:
            b = _bool(value)
            if b is None:
                errors.append(RowError(line, col, "not_yes_no"))
            data[col] = bool(b)
        elif col in REQUIRED or value:
            data[col] = value
    contacts: list[dict[str, Any]] = []
    for n in range(1, MAX_CONTACTS + 1):
        cells = {f: (raw.get(f"contact{n}_{f}") or "").strip() for f in CONTACT_FIELDS}
        if not any(cells.values()):
            continue
        contact: dict[str, Any] = {
            "name": cells["name"],
            "phone": cells["phone"],
            "relation": cells["relation"] or None,
        }
        for flag, default in (("has_key", False), ("call_at_night", True)):
            b = _bool(cells[flag]) if cells[flag] else default
            if b is None:
                errors.append(RowError(line, f"contact{n}_{flag}", "not_yes_no"))
            contact[flag] = bool(b)
        contacts.append(contact)
    data["contacts"] = contacts
    devices: list[tuple[str, str]] = []
    for item in (raw.get("devices") or "").replace(",", ";").split(";"):
        item = item.strip()
        if not item:
            continue
        kind, _, device_id = item.rpartition(":")
        kind = kind or "device"
        if kind not in DEVICE_KINDS or not device_id or len(device_id) > 64:
            errors.append(RowError(line, "devices", "bad_device"))
        else:
            devices.append((kind, device_id))
    try:
        client = ClientIn.model_validate(data)
    except ValidationError as exc:
        for e in exc.errors():
            loc = e["loc"]
            if loc and loc[0] == "contacts" and len(loc) >= 3:
                column = f"contact{int(loc[1]) + 1}_{loc[2]}"
                reason = (
                    "bad_phone" if loc[2] == "phone" and e["type"] != "missing" else _REASONS.get(e["type"], e["type"])
                )
            else:
                column = str(loc[0]) if loc else ""
                reason = _REASONS.get(e["type"], e["type"])
            errors.append(RowError(line, column, reason))
        return None
    return _Row(line, client, devices) if len(errors) == before else None


def parse(text: str) -> tuple[list[_Row], list[RowError]]:
    """Every row checked; the good ones and every error (a file the CSV reader cannot read: its line, ``bad_csv``)."""
    errors: list[RowError] = []
    try:
        return _parse(text, errors)
    except csv.Error:
        errors.append(RowError(0, "", "bad_csv"))
        return [], errors


def _parse(text: str, errors: list[RowError]) -> tuple[list[_Row], list[RowError]]:
    text = text.removeprefix("\ufeff")
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter)
    header = [h.strip() for h in reader.fieldnames or []]
    reader.fieldnames = header
    unknown = [h for h in header if h not in COLUMNS]
    for col in unknown:
        errors.append(RowError(1, col, "unknown_column"))
    for col in REQUIRED:
        if col not in header:
            errors.append(RowError(1, col, "missing_column"))
    if errors:
        return [], errors
    rows: list[_Row] = []
    seen: dict[str, int] = {}
    for raw in reader:
        line = reader.line_num
        if len(rows) + len(errors) > MAX_ROWS:
            errors.append(RowError(line, "", "too_many_rows"))
            break
        if None in raw:  # more cells than the header has columns
            errors.append(RowError(line, "", "too_many_cells"))
            continue
        if not any((v or "").strip() for v in raw.values()):
            continue
        row = _parse_row(line, raw, errors)
        if row is None:
            continue
        if row.client.ref in seen:
            errors.append(RowError(line, "ref", "duplicate_ref"))
            continue
        seen[row.client.ref] = line
        rows.append(row)
    return rows, errors


async def import_csv(session: AsyncSession, text: str, *, dry_run: bool) -> ImportReport:
    """Check the whole file; unless ``dry_run`` and only when no row is bad, write it (the caller commits)."""
    rows, errors = parse(text)
    report = ImportReport(rows=len(rows) + len({e.row for e in errors if e.row > 1}), errors=errors)
    existing = {
        c.ref: c for c in await session.scalars(select(Client).where(Client.ref.in_([r.client.ref for r in rows])))
    }
    report.created = sum(1 for r in rows if r.client.ref not in existing)
    report.updated = len(rows) - report.created
    report.devices_linked = sum(len(r.devices) for r in rows)
    if dry_run or errors:
        return report
    for r in rows:
        known = existing.get(r.client.ref)
        client = (
            await repository.replace_client(session, known.id, r.client)
            if known is not None
            else await repository.create_client(session, r.client)
        )
        for kind, device_id in r.devices:
            await repository.link_device(session, client.id, device_id, kind)
    report.imported = True
    return report


def _cell(value: object) -> str:
    if isinstance(value, bool):
        return "ja" if value else "nej"
    return "" if value is None else str(value)


async def export_csv(session: AsyncSession) -> tuple[str, int]:
    """Every record in the import's column set (protected fields included: for case officers only)."""
    clients: Sequence[Client] = (
        await session.scalars(select(Client).options(selectinload(Client.contacts)).order_by(Client.ref))
    ).all()
    devices = await repository.active_devices(session, [c.id for c in clients])
    kinds = await repository.active_device_kinds(session, [c.id for c in clients])
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for c in clients:
        row = [_cell(getattr(c, col)) for col in RECORD_COLUMNS]
        row.append(";".join(d if kinds.get(d, "device") == "device" else f"{kinds[d]}:{d}" for d in devices[c.id]))
        for n in range(MAX_CONTACTS):
            contact = c.contacts[n] if n < len(c.contacts) else None
            row.extend(_cell(getattr(contact, f)) if contact else "" for f in CONTACT_FIELDS)
        writer.writerow(row)
    return out.getvalue(), len(clients)
