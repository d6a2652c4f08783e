"""An Alembic chain: one script directory with its own version table, so several chains share one database."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import Float, MetaData
from sqlalchemy.engine import Connection


@dataclass(frozen=True)
class Chain:
    """One Alembic chain: its script directory and the tables it took over from the old single chain."""

    name: str
    directory: Path
    # The tables this chain owns that the old single chain (head 0006) made, and this chain's revision whose
    # schema equals the old chain's 0006 for them: a database of the old chain is stamped there, not rebuilt.
    legacy_tables: frozenset[str] = field(default_factory=frozenset)
    legacy_baseline: str | None = None
    version_table: str = ""

    def __post_init__(self) -> None:
        if not self.version_table:
            object.__setattr__(self, "version_table", f"alembic_version_{self.name}")


def alembic_config(chain: Chain, connection: Connection | None = None) -> Any:
    """Alembic's ``Config`` for ``chain`` (no alembic.ini: the env reads the chain from ``attributes``)."""
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(chain.directory))
    cfg.attributes["chain"] = chain
    if connection is not None:
        cfg.attributes["connection"] = connection
    return cfg


def compare_type(context: Any, inspected: Any, column: Any, inspected_type: Any, metadata_type: Any) -> bool | None:
    """Autogenerate's type comparison, except that FLOAT and DOUBLE are one type (an 8-byte float on SQLite and
    PostgreSQL; SQLite reports FLOAT where a model says Double). ``None``: Alembic's own comparison decides."""
    if isinstance(inspected_type, Float) and isinstance(metadata_type, Float):
        return False
    return None


def run_env(target_metadata: MetaData | Sequence[MetaData] | None) -> None:
    """The body of every chain's ``env.py``: migrate on the connection ``trygg.schema.migrate`` hands in."""
    from alembic import context

    connection = context.config.attributes.get("connection")
    chain = context.config.attributes.get("chain")
    if connection is None or not isinstance(chain, Chain):
        raise RuntimeError("run migrations through `trygg db upgrade` (trygg.schema.migrate)")
    metadatas = [target_metadata] if isinstance(target_metadata, MetaData) else list(target_metadata or [])
    own = {name for m in metadatas for name in m.tables}

    def include_name(name: str | None, kind: str, parents: Any) -> bool:
        # Other chains' tables share the database: autogenerate must not offer to drop them (nor this chain's
        # tables once removed from the models: write that drop by hand).
        return kind != "table" or name in own

    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        include_name=include_name,
        version_table=chain.version_table,
        render_as_batch=True,  # SQLite alters tables by copying them
        compare_type=compare_type,
    )
    with context.begin_transaction():
        context.run_migrations()
