"""A durable per-device outbox: alarms and cancels that the gateway has not confirmed yet.

One JSON file per device (``{directory}/{device_id}.json``), rewritten atomically on every change (write a
temporary file, fsync, ``os.replace``, fsync the directory), so a device that restarts or loses power keeps
its unsent alarms. The file is small: a device has a handful of unconfirmed alarms at most.
"""

from __future__ import annotations

import contextlib
import json
import os
import time
from dataclasses import asdict, dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import structlog

log = structlog.get_logger(__name__)

FORMAT_VERSION = 1


class EntryKind(StrEnum):
    ALARM = "alarm"  # an AlarmMessage, kept until ``stored`` (or ``rejected``)
    CANCEL = "cancel"  # an AlarmCancel, kept until ``cancelled`` (or ``rejected``)


@dataclass(slots=True)
class OutboxEntry:
    kind: EntryKind
    alarm_id: str
    payload: str  # the exact JSON published (AlarmMessage or AlarmCancel)
    created_at: float  # wall clock (epoch seconds) of the press or cancel
    first_sent: float | None = None  # wall clock of the first publish, None while never sent
    last_sent: float | None = None
    attempts: int = 0  # publishes so far

    @property
    def key(self) -> tuple[EntryKind, str]:
        return (self.kind, self.alarm_id)

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> OutboxEntry:
        return cls(
            kind=EntryKind(data["kind"]),
            alarm_id=str(data["alarm_id"]),
            payload=str(data["payload"]),
            created_at=float(data["created_at"]),
            first_sent=None if data.get("first_sent") is None else float(data["first_sent"]),
            last_sent=None if data.get("last_sent") is None else float(data["last_sent"]),
            attempts=int(data.get("attempts", 0)),
        )


class Outbox:
    """Unconfirmed entries of one device, in insertion order, persisted on every change."""

    def __init__(self, directory: Path, device_id: str) -> None:
        self.directory = Path(directory)
        self.device_id = device_id
        self.path = self.directory / f"{device_id}.json"
        self._entries: dict[tuple[EntryKind, str], OutboxEntry] = {}

    # --- reading

    def load(self) -> list[OutboxEntry]:
        """Read the file (missing file = empty outbox). A corrupt file is set aside, never silently lost."""
        self._entries = {}
        try:
            raw = self.path.read_bytes()
        except FileNotFoundError:
            return []
        try:
            data = json.loads(raw)
            entries = [OutboxEntry.from_json(item) for item in data["entries"]]
        except (ValueError, KeyError, TypeError) as exc:
            aside = self.path.with_name(f"{self.path.name}.corrupt-{int(time.time())}")
            with contextlib.suppress(OSError):
                os.replace(self.path, aside)
            log.error(
                "outbox.corrupt",
                device_id=self.device_id,
                path=str(self.path),
                moved_to=str(aside),
                error=str(exc),
            )
            return []
        for entry in entries:
            self._entries[entry.key] = entry
        return self.entries()

    def entries(self) -> list[OutboxEntry]:
        return list(self._entries.values())

    def get(self, kind: EntryKind, alarm_id: str) -> OutboxEntry | None:
        return self._entries.get((kind, alarm_id))

    def alarm_ids(self) -> list[str]:
        """Alarm ids with anything unconfirmed (alarm or cancel), without duplicates, oldest first."""
        return list(dict.fromkeys(entry.alarm_id for entry in self._entries.values()))

    def __len__(self) -> int:
        return len(self._entries)

    def __contains__(self, key: object) -> bool:
        return key in self._entries

    # --- changing (each change is on disk before the method returns)

    def add(self, entry: OutboxEntry) -> None:
        self._entries[entry.key] = entry
        self._save()

    def mark_sent(self, kind: EntryKind, alarm_id: str, now: float | None = None) -> OutboxEntry | None:
        entry = self._entries.get((kind, alarm_id))
        if entry is None:
            return None
        now = time.time() if now is None else now
        if entry.first_sent is None:
            entry.first_sent = now
        entry.last_sent = now
        entry.attempts += 1
        self._save()
        return entry

    def remove(self, kind: EntryKind, alarm_id: str) -> OutboxEntry | None:
        entry = self._entries.pop((kind, alarm_id), None)
        if entry is not None:
            self._save()
        return entry

    def _save(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        body = json.dumps(
            {
                "version": FORMAT_VERSION,
                "device_id": self.device_id,
                "entries": [entry.to_json() for entry in self._entries.values()],
            },
            indent=1,
        ).encode()
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(body)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.path)
        _fsync_dir(self.directory)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
