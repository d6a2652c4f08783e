"""The receiver's Alembic chain: ``env.py`` and ``versions/`` (add a revision: docs/architecture.md)."""

from sqlalchemy import MetaData


def metadata() -> MetaData:
    """The receiver's tables, every model module imported (what autogenerate compares the database with)."""
    import alarm_receiver.models  # noqa: F401
    from alarm_receiver.db import Base

    return Base.metadata
