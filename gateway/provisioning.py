"""Broker credentials and ACL for the device fleet (issue "device fleet").

Every device gets its own MQTT login (username = device id) when it is provisioned; the gateway and the
receiver have service accounts. The database holds only Mosquitto hashes, and Trygg renders Mosquitto's
password files and ACL from it, so who may connect (and where they may publish) is decided in one place:
a retired device simply disappears from the password file and is refused at its next connect.

Two password files, one per kind of listener (docs/fleet.md, "Client ids are bound to accounts"): devices log
in only on the device listeners, where Mosquitto replaces the client id by the username
(``use_username_as_clientid``), so no device can take over the session of the gateway or of another device;
the services log in only on the service listener (private network), where their fixed client ids
(``trygg-gateway``, ``trygg-gateway-fast``, ``trygg-receiver``, one set per instance) keep their persistent
sessions. A device's password is worthless on the service listener and the reverse.

The hash is Mosquitto 2.x's own format (``$7$``, PBKDF2-HMAC-SHA512), generated here so that no
``mosquitto_passwd`` binary is needed on the gateway's host.
"""

from __future__ import annotations

import base64
import contextlib
import grp
import hashlib
import hmac
import os
import secrets
import signal
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from devices.topics import DEVICE_ID_RE
from gateway.credentials_models import DeviceCredential, ServiceAccount
from gateway.models import Device
from trygg.db import utcnow

# Mosquitto 2.0's mosquitto_passwd: 12 random salt bytes, 101 PBKDF2 rounds by default. The rounds stay
# low on purpose: the broker hashes on every connect (a fleet reconnecting after a broker restart means
# thousands at once), and our passwords are random 192-bit strings, which no dictionary attack can guess.
SALT_BYTES = 12
DEFAULT_ITERATIONS = 101
PASSWORD_BYTES = 24
FILE_MODE = 0o640


class Role(StrEnum):
    GATEWAY = "gateway"
    RECEIVER = "receiver"


class ProvisioningError(ValueError):
    """A credential cannot be issued (unknown or retired device, name clash, bad role)."""


@dataclass(frozen=True, slots=True)
class PasswordEntry:
    """One line of the broker's password file."""

    username: str
    password_hash: str


# --- hashing ---------------------------------------------------------------------------------------------
def mosquitto_hash(password: str, *, salt: bytes | None = None, iterations: int = DEFAULT_ITERATIONS) -> str:
    """``$7$<iterations>$<base64 salt>$<base64 hash>``: what Mosquitto 2.x's password file expects.

    Checked against ``mosquitto_passwd`` 2.0.11 (same salt gives the same string) and against a running
    Mosquitto (tests/test_provisioning.py).
    """
    if iterations < 1:
        raise ValueError("iterations must be at least 1")
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    digest = hashlib.pbkdf2_hmac("sha512", password.encode("utf-8"), salt, iterations)
    return f"$7${iterations}${_b64(salt)}${_b64(digest)}"


def verify_mosquitto_hash(password: str, password_hash: str) -> bool:
    """Whether ``password`` matches a ``$7$`` hash (e.g. one written by ``mosquitto_passwd``)."""
    parts = password_hash.split("$")
    if len(parts) != 5 or parts[0] != "" or parts[1] != "7" or not parts[2].isdigit() or int(parts[2]) < 1:
        return False
    try:
        salt = base64.b64decode(parts[3], validate=True)
    except ValueError:
        return False
    return hmac.compare_digest(mosquitto_hash(password, salt=salt, iterations=int(parts[2])), password_hash)


def new_password() -> str:
    """A random password for a broker login (URL-safe, so it survives config files and shells)."""
    return secrets.token_urlsafe(PASSWORD_BYTES)


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


# --- issuing -----------------------------------------------------------------------------------------------
async def issue_device_credentials(session: AsyncSession, device_id: str) -> str:
    """Give ``device_id`` a new random broker password and return it in clear, this once.

    Re-issuing rotates: the old password stops working at the broker's next reload of the password file
    (``write_broker_auth`` + ``reload_broker``). Only registered, non-retired devices get credentials.
    """
    device = await session.get(Device, device_id)
    if device is None:
        raise ProvisioningError(f"no device {device_id!r}")
    if device.retired_at is not None:
        raise ProvisioningError(f"device {device_id!r} is retired")
    if await session.get(ServiceAccount, device_id) is not None:
        raise ProvisioningError(f"{device_id!r} is a service account's username; a device cannot share it")
    password = new_password()
    password_hash = mosquitto_hash(password)
    credential = await session.get(DeviceCredential, device_id)
    if credential is None:
        session.add(DeviceCredential(device_id=device_id, username=device_id, password_hash=password_hash))
    else:
        credential.password_hash = password_hash
        credential.rotated_at = utcnow()
    await session.flush()
    return password


async def ensure_service_account(session: AsyncSession, username: str, role: str, password: str) -> ServiceAccount:
    """Create the gateway's or receiver's broker account, or set its role and password if it exists.

    Service usernames follow the device id rules and may not be a device id: the ACL's per-device pattern
    keys on the username, so a clash would hand one account the other's rights.
    """
    role_ = _role(role)
    if not DEVICE_ID_RE.match(username):
        raise ProvisioningError(f"username {username!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    if not password:
        raise ProvisioningError("the password must not be empty")
    if await session.get(Device, username) is not None:
        raise ProvisioningError(f"{username!r} is a device id; a service account cannot share it")
    account = await session.get(ServiceAccount, username)
    if account is None:
        account = ServiceAccount(username=username, role=role_.value, password_hash=mosquitto_hash(password))
        session.add(account)
    else:
        account.role = role_.value
        account.password_hash = mosquitto_hash(password)
    await session.flush()
    return account


def _role(role: str) -> Role:
    try:
        return Role(role)
    except ValueError:
        raise ProvisioningError(f"unknown role {role!r}; one of {', '.join(r.value for r in Role)}") from None


# --- rendering -----------------------------------------------------------------------------------------------
def render_password_file(rows: Iterable[PasswordEntry | tuple[str, str]]) -> str:
    """Mosquitto's password file: ``username:hash`` lines, sorted, one per account.

    A username twice would leave it to Mosquitto which hash wins, so that is refused.
    """
    entries = sorted((PasswordEntry(*row) if isinstance(row, tuple) else row for row in rows), key=_username)
    seen: set[str] = set()
    for entry in entries:
        if ":" in entry.username or "\n" in entry.username or not entry.username:
            raise ProvisioningError(f"username {entry.username!r} cannot go into a password file")
        if entry.username in seen:
            raise ProvisioningError(f"username {entry.username!r} appears twice")
        seen.add(entry.username)
    return "".join(f"{e.username}:{e.password_hash}\n" for e in entries)


def _username(entry: PasswordEntry) -> str:
    return entry.username


def render_acl(
    topic_root: str,
    gateway_user: str | Sequence[str] | None,
    receiver_user: str | Sequence[str] | None,
) -> str:
    """Mosquitto's ACL: each device only under its own subtree, the services only what they need.

    Anything not granted is denied. The device rule is one ``pattern`` with ``%u`` (the username is the
    device id), so the ACL does not grow with the fleet and needs no rewrite when a device is added.
    """
    root = _check_root(topic_root)
    devices = f"{root}/devices"
    lines = [
        "# Written by Trygg (trygg broker write-auth); edits are overwritten.",
        "# Anything not granted here is denied.",
        "",
        "# Devices: the username is the device id; a device sees only its own subtree.",
        f"pattern readwrite {devices}/%u/#",
    ]
    for user in _users(gateway_user):
        lines += [
            "",
            "# The gateway: reads every device; answers alarms, sets config, starts and ends camera check-ins and",
            "# voice calls.",
            f"user {user}",
            f"topic read {devices}/#",
            f"topic write {devices}/+/alarm/ack",
            f"topic write {devices}/+/config",
            f"topic write {devices}/+/camera/request",
            f"topic write {devices}/+/camera/end",
            f"topic write {devices}/+/voice/request",
            f"topic write {devices}/+/voice/end",
            f"topic readwrite {root}/gateway/#",
        ]
    for user in _users(receiver_user):
        lines += [
            "",
            "# The alarm receiver: tells a device that help is coming; reads no device topic.",
            f"user {user}",
            f"topic write {devices}/+/alarm/ack",
            f"topic readwrite {root}/receiver/#",
        ]
    return "\n".join(lines) + "\n"


def _users(value: str | Sequence[str] | None) -> list[str]:
    users = [value] if isinstance(value, str) else list(value or ())
    for user in users:
        if not DEVICE_ID_RE.match(user):
            raise ProvisioningError(f"service username {user!r} must be 1-64 characters of A-Z a-z 0-9 _ -")
    return users


def _check_root(topic_root: str) -> str:
    if not topic_root or topic_root != topic_root.strip("/") or any(c in topic_root for c in "+#\n "):
        raise ProvisioningError(f"topic root {topic_root!r} must be a plain topic without wildcards or edge '/'")
    return topic_root


# --- files and the broker ---------------------------------------------------------------------------------
async def device_password_entries(session: AsyncSession) -> list[PasswordEntry]:
    """Every non-retired device that has credentials: the device listeners' password file."""
    devices = await session.execute(
        select(DeviceCredential.username, DeviceCredential.password_hash)
        .join(Device, Device.id == DeviceCredential.device_id)
        .where(Device.retired_at.is_(None))
    )
    return [PasswordEntry(row[0], row[1]) for row in devices.all()]


async def service_password_entries(session: AsyncSession) -> list[PasswordEntry]:
    """The gateway's and receiver's accounts: the service listener's password file."""
    services = await session.execute(select(ServiceAccount.username, ServiceAccount.password_hash))
    return [PasswordEntry(row[0], row[1]) for row in services.all()]


async def service_users(session: AsyncSession, role: Role) -> list[str]:
    """Usernames of the service accounts with ``role``, sorted (stable files, stable diffs)."""
    stmt = select(ServiceAccount.username).where(ServiceAccount.role == role.value).order_by(ServiceAccount.username)
    return list((await session.scalars(stmt)).all())


async def write_broker_auth(
    session: AsyncSession,
    device_password_file: Path,
    service_password_file: Path,
    acl_file: Path,
    topic_root: str,
    *,
    group: str | int | None = None,
) -> None:
    """Write the two password files and the ACL from the database, each atomically (mode 0640).

    Atomic (temp file + rename) because Mosquitto may read them at any moment (start, SIGHUP): it must
    see the old file or the new one, never half of one. ``group`` (a name such as ``mosquitto``, or a gid)
    is given the read right the broker needs once it has dropped root.
    """
    acl = render_acl(
        topic_root, await service_users(session, Role.GATEWAY), await service_users(session, Role.RECEIVER)
    )
    devices = render_password_file(await device_password_entries(session))
    services = render_password_file(await service_password_entries(session))
    gid = group if isinstance(group, int) or group is None else grp.getgrnam(group).gr_gid
    write_atomic(acl_file, acl, gid=gid)
    write_atomic(device_password_file, devices, gid=gid)
    write_atomic(service_password_file, services, gid=gid)


async def fleet_credentials(session: AsyncSession, device_ids: Iterable[str], known: dict[str, str]) -> dict[str, str]:
    """A password for each of ``device_ids`` (e.g. a simulated fleet): the one in ``known`` while it still
    matches the stored hash, otherwise a new one (issued and stored). Returns device id -> clear password."""
    result: dict[str, str] = {}
    for device_id in device_ids:
        credential = await session.get(DeviceCredential, device_id)
        old = known.get(device_id)
        if credential is not None and old is not None and verify_mosquitto_hash(old, credential.password_hash):
            result[device_id] = old
        else:
            result[device_id] = await issue_device_credentials(session, device_id)
    return result


def write_atomic(path: Path, text: str, *, mode: int = FILE_MODE, gid: int | None = None) -> None:
    """Replace ``path`` with ``text`` in one step; readers never see a partial file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            os.fchmod(f.fileno(), mode)
            if gid is not None:
                os.fchown(f.fileno(), -1, gid)
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    _fsync_dir(path.parent)


def _fsync_dir(directory: Path) -> None:
    """Make the rename itself durable (the new directory entry), not only the file's content."""
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def reload_broker(pid: int) -> None:
    """Ask a running Mosquitto to re-read its password file and ACL (SIGHUP).

    Mosquitto then checks the clients already connected against the new files and disconnects those whose
    login is gone (a retired device, a rotated password), so a retirement takes effect at once.
    """
    os.kill(pid, signal.SIGHUP)
