"""``trygg user``: accounts that log in to the receiver; the logic is ``alarm_receiver.auth``."""

from __future__ import annotations

import getpass
import secrets
from typing import Annotated

import typer

from alarm_receiver.auth import AuthError, Role, WeakPassword, create_user
from trygg_cli.common import fail, receiver_store, run, settings

user_app = typer.Typer(help="Operator, patrol, technician and admin accounts.", no_args_is_help=True)


@user_app.command("add")
def user_add(
    username: str,
    role: Annotated[str, typer.Option(help="operator, patrol, technician, case_officer or admin")],
    password: Annotated[str | None, typer.Option(help="omit to be asked, or use --generate")] = None,
    generate: Annotated[bool, typer.Option(help="generate a password and print it")] = False,
    display_name: Annotated[str | None, typer.Option()] = None,
) -> None:
    """Create a user who can log in to the receiver."""
    s = settings()
    try:
        role_ = Role(role)
    except ValueError:
        raise fail(f"error: unknown role {role!r}; one of {', '.join(r.value for r in Role)}", 2) from None
    if generate:
        password = secrets.token_urlsafe(12)
    elif password is None:
        password = getpass.getpass("password: ")

    async def go(pw: str) -> None:
        async with receiver_store(s) as session:
            await create_user(session, username, pw, role_, display_name, min_length=s.password_min_length)

    try:
        run(go(password))
    except (AuthError, WeakPassword) as exc:
        raise fail(f"error: {exc}") from None
    typer.echo(f"created {role_.value} {username}" + (f" with password {password}" if generate else ""))
