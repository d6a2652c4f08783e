"""The gateway's Alembic chain: ``env.py`` and ``versions/`` (add a revision: docs/architecture.md)."""

from sqlalchemy import MetaData


def metadata() -> MetaData:
    """The gateway's tables, every model module imported (what autogenerate compares the database with)."""
    import gateway.checkin.models
    import gateway.credentials_models
    import gateway.fleet.models
    import gateway.models
    import gateway.protocols.dc09.models
    import gateway.protocols.scaip.models  # noqa: F401
    from gateway.db import Base

    return Base.metadata
