"""the gateway's own installation-test decision in a column of its own; the dead-letter table

Revision ID: g0003
Revises: g0002
Create Date: 2026-11-29

``intake_alarms.is_test`` replaces the ``is_test`` key a stored payload could carry (a device could set it and
hide its own alarm, issue 8). Existing rows are tests only where an installation test names them.
``dead_letters`` keeps, bounded, the device messages the gateway could not handle (issue 8).

Written against the old single chain as its revision 0007 (never released), ported to the gateway's chain as g0002
and renumbered g0003 when it met main's g0002 (battery_only_and_test_codes).
"""

import sqlalchemy as sa
from alembic import op

revision = "g0003"
down_revision = "g0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intake_alarms") as batch:
        batch.add_column(sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE intake_alarms SET is_test = true WHERE EXISTS (SELECT 1 FROM install_tests t "
        "WHERE t.device_id = intake_alarms.device_id AND t.alarm_id = intake_alarms.alarm_id)"
    )
    op.create_table(
        "dead_letters",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(256), nullable=False),
        sa.Column("device_id", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(32), nullable=True),
        sa.Column("code", sa.String(32), nullable=False),
        sa.Column("error", sa.Text(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dead_letters")),
    )


def downgrade() -> None:
    op.drop_table("dead_letters")
    op.drop_column("intake_alarms", "is_test")  # a plain DROP COLUMN (SQLite has it since 3.35): no table copied
