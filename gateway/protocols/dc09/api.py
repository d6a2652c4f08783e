"""``/api/v1/dc09/accounts``: the DC-09 registry for technicians (thin routes over ``accounts.py``).

A key is given as hex, or generated (``generate_key``: 128, 192 or 256 bits) and returned once in that answer, for
the unit's configuration; listings say only ``encrypted``. Every change is in the supervision log (without the key).
"""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, StringConstraints

from gateway.api.deps import ApiUser, SessionDep, require_roles
from gateway.errors import Conflict, Invalid, NotFound
from gateway.protocols.dc09 import accounts
from gateway.protocols.dc09.models import Dc09Account
from trygg import audit
from trygg.errors import responses

Technician = Annotated[ApiUser, Depends(require_roles("technician"))]

router = APIRouter(prefix="/dc09/accounts", tags=["dc09"], responses=responses(401, 403, 422, 503))

Hex = Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]+$", max_length=64)]


class AccountIn(BaseModel):
    account: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{3,16}$")]
    device_id: Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_-]{1,64}$")]
    receiver: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{1,6}$")] | None = None
    line: Annotated[str, StringConstraints(pattern=r"^[0-9A-Fa-f]{1,6}$")] | None = None
    key: Hex | None = None
    generate_key: Literal[128, 192, 256] | None = None


class AccountOut(BaseModel):
    id: int
    account: str
    receiver: str | None
    line: str | None
    device_id: str
    encrypted: bool
    created_at: datetime
    key: str | None = None  # only in the answer that generated it


def out(row: Dc09Account, key: str | None = None) -> AccountOut:
    return AccountOut(
        id=row.id,
        account=row.account,
        receiver=row.receiver or None,
        line=row.line or None,
        device_id=row.device_id,
        encrypted=row.aes_key is not None,
        created_at=row.created_at,
        key=key,
    )


@router.get("", response_model=list[AccountOut])
async def list_accounts(user: Technician, session: SessionDep, device_id: str | None = None) -> list[AccountOut]:
    return [out(row) for row in await accounts.list_accounts(session, device_id)]


@router.post("", status_code=201, response_model=AccountOut, responses=responses(400, 404, 409))
async def add_account(body: AccountIn, user: Technician, session: SessionDep) -> AccountOut:
    if body.key is not None and body.generate_key is not None:
        raise Invalid("dc09.key_twice", "give a key or generate_key, not both")
    key = accounts.new_key(body.generate_key) if body.generate_key is not None else body.key
    try:
        row = await accounts.add_account(
            session, body.account, body.device_id, receiver=body.receiver, line=body.line, key=key
        )
    except accounts.AccountError as exc:
        if exc.code == "dc09.unknown_device":
            raise NotFound(exc.code, str(exc), device_id=body.device_id) from None
        if exc.code == "dc09.account_exists":
            raise Conflict(exc.code, str(exc), account=body.account) from None
        raise Invalid(exc.code, str(exc)) from None
    await audit.append(
        session,
        actor=user.username,
        action="dc09.account_added",
        subject=f"device-{row.device_id}",
        details={"account": row.account, "receiver": row.receiver, "line": row.line, "encrypted": key is not None},
    )
    await session.commit()
    accounts.registry_changed()
    return out(row, key if body.generate_key is not None else None)


@router.delete("/{account_id}", status_code=204, responses=responses(404))
async def remove_account(account_id: int, user: Technician, session: SessionDep) -> None:
    row = await session.get(Dc09Account, account_id)
    if row is None:
        raise NotFound("dc09.unknown_account", "no such DC-09 account", id=account_id)
    await session.delete(row)
    await audit.append(
        session,
        actor=user.username,
        action="dc09.account_removed",
        subject=f"device-{row.device_id}",
        details={"account": row.account, "receiver": row.receiver, "line": row.line},
    )
    await session.commit()
    accounts.registry_changed()  # refused from the next frame on, not only once the receiver's cache expires
