"""``trygg secrets``: random shared secrets (intake token, metrics token) and docker compose's env file.

The logic is ``trygg.secrets``; the services refuse to start with a missing, short or published secret.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated

import typer

from trygg.secrets import compose_env, new_token
from trygg_cli.common import fail

secrets_app = typer.Typer(
    help="Random shared secrets (intake token, metrics token, compose's env file).", no_args_is_help=True
)


@secrets_app.command("token")
def token() -> None:
    """Print a random token (for TRYGG_INTAKE_TOKEN or TRYGG_METRICS_TOKEN)."""
    typer.echo(new_token())


@secrets_app.command("compose-env")
def compose_env_file(
    out: Annotated[Path, typer.Option(help="the env file docker compose reads")] = Path(".env.compose"),
    force: Annotated[bool, typer.Option(help="replace an existing file (new secrets: reset the volumes too)")] = False,
) -> None:
    """Write every secret of the docker-compose stack (random) to OUT, mode 0600."""
    if out.exists() and not force:
        raise fail(f"error: {out} exists; keep it, or pass --force to replace it")
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        os.fchmod(f.fileno(), 0o600)
        f.write(compose_env())
    typer.echo(f"wrote {out}: docker compose --env-file {out} up")
