"""Alembic environment of the receiver's chain (run by alarm_receiver.db.migrate through trygg.schema)."""

from alarm_receiver.migrations import metadata
from trygg.schema import run_env

run_env(metadata())
