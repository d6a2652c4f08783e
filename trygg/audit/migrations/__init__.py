"""The supervision log's Alembic chain (version table ``alembic_version_audit``); both services run it.

One chain for the table both services hold: in two databases each gets its own log; in one shared database both
append to the same chain (appends are serialised, ``trygg.audit``).
"""

from pathlib import Path

from sqlalchemy import MetaData

from trygg.audit.models import AuditBase
from trygg.schema import Chain
from trygg.schema.legacy import LEGACY_SPLIT

AUDIT_CHAIN = Chain(
    name="audit",
    directory=Path(__file__).parent,
    legacy_tables=LEGACY_SPLIT["audit"],
    legacy_baseline="a0001",
)


def metadata() -> MetaData:
    return AuditBase.metadata
