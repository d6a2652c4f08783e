"""Alembic environment of the old single chain (frozen at 0006): only to bring an old database to 0006."""

from trygg.schema.chain import run_env

run_env(None)
