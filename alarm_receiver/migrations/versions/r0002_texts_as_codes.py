"""texts for people as codes with parameters: history lines and the gateway's outcomes

``alarm_events.code``/``params`` (a history line the console translates) and ``queue_alarms.outcome_code``/
``outcome_params`` (an outcome the gateway set). Existing rows keep their English text and get no code: the console
shows the action's word and that text. The receiver's half of the old chain's 0007_codes (issue 9), ported here.

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("alarm_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("params", sa.JSON(), nullable=True))
    with op.batch_alter_table("queue_alarms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("outcome_code", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("outcome_params", sa.JSON(), nullable=True))


# (table, column) in the order the downgrade drops them
_ADDED = (
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
