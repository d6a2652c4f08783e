"""Alembic environment: runs on the connection handed in by trygg.db.migrate (sync, inside run_sync)."""

import importlib
import pkgutil

from alembic import context

import alarm_receiver
import gateway
import trygg
from trygg.db import Base

# Register every table: each module named `models` (or ending in `_models`) in the service packages.
for package in (gateway, alarm_receiver, trygg):
    for info in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
        if info.name.rsplit(".", 1)[-1] == "models" or info.name.endswith("_models"):
            importlib.import_module(info.name)

target_metadata = Base.metadata
connection = context.config.attributes.get("connection")

if connection is None:
    raise RuntimeError("run migrations through `trygg db upgrade` (trygg.db.migrate)")

context.configure(connection=connection, target_metadata=target_metadata, render_as_batch=True)
with context.begin_transaction():
    context.run_migrations()
