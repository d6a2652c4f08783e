"""battery-only devices; installation test results as codes

``device_health.has_mains`` (false: a battery-only device, never "mains lost"; null: not reported yet) and
``install_tests.detail_code`` (what the console shows; ``detail`` stays the English for API users). Existing rows
get nulls. The gateway's half of the old chain's 0007_codes (issue 9), ported here.

Revision ID: g0002
Revises: g0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "g0002"
down_revision = "g0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("device_health", schema=None) as batch_op:
        batch_op.add_column(sa.Column("has_mains", sa.Boolean(), nullable=True))
    with op.batch_alter_table("install_tests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("detail_code", sa.String(length=64), nullable=True))


# (table, column) in the order the downgrade drops them
_ADDED = (
    ("install_tests", "detail_code"),
    ("device_health", "has_mains"),
)


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has it since 3.35), as the receiver's r0002: no table is copied and dropped.
    for table, column in _ADDED:
        op.drop_column(table, column)
