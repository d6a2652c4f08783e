"""texts for people as codes with parameters; devices without mains

Receiver tables: ``alarm_events.code``/``params`` (a history line the console translates) and
``queue_alarms.outcome_code``/``outcome_params`` (an outcome the gateway set). Gateway tables:
``device_health.has_mains`` (false: a battery-only device, never "mains lost") and ``install_tests.detail_code``.
Existing rows keep their English text and get no code: the console shows the action's word and that text.

Revision ID: 0007_codes
Revises: 0006
Create Date: 2026-11-29
"""

import sqlalchemy as sa
from alembic import op

revision = "0007_codes"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alarm_events") as batch:
        batch.add_column(sa.Column("code", sa.String(64), nullable=True))
        batch.add_column(sa.Column("params", sa.JSON(), nullable=True))
    with op.batch_alter_table("queue_alarms") as batch:
        batch.add_column(sa.Column("outcome_code", sa.String(64), nullable=True))
        batch.add_column(sa.Column("outcome_params", sa.JSON(), nullable=True))
    with op.batch_alter_table("device_health") as batch:
        batch.add_column(sa.Column("has_mains", sa.Boolean(), nullable=True))
    with op.batch_alter_table("install_tests") as batch:
        batch.add_column(sa.Column("detail_code", sa.String(64), nullable=True))


# (table, column) in the order the downgrade drops them
_ADDED = (
    ("install_tests", "detail_code"),
    ("device_health", "has_mains"),
    ("queue_alarms", "outcome_params"),
    ("queue_alarms", "outcome_code"),
    ("alarm_events", "params"),
    ("alarm_events", "code"),
)


def downgrade() -> None:
    # A plain DROP COLUMN (SQLite has it since 3.35): batch mode would copy and drop queue_alarms, which
    # alarm_events references, and SQLite with foreign keys on refuses that.
    for table, column in _ADDED:
        op.drop_column(table, column)
