"""Alembic environment of the supervision log's chain (run by trygg.schema.migrate)."""

from trygg.audit.migrations import metadata
from trygg.schema import run_env

run_env(metadata())
