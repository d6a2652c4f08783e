"""Alembic environment of the gateway's chain (run by gateway.db.migrate through trygg.schema)."""

from gateway.migrations import metadata
from trygg.schema import run_env

run_env(metadata())
