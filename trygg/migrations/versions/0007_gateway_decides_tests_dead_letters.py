"""the gateway's own installation-test decision in a column of its own (never a device's payload)

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-29

``intake_alarms.is_test`` replaces the ``is_test`` key a stored payload could carry (a device could set it and
hide its own alarm, issue 8). Existing rows are tests only where an installation test names them.
"""

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("intake_alarms") as batch:
        batch.add_column(sa.Column("is_test", sa.Boolean(), nullable=False, server_default=sa.false()))
    op.execute(
        "UPDATE intake_alarms SET is_test = true WHERE EXISTS (SELECT 1 FROM install_tests t "
        "WHERE t.device_id = intake_alarms.device_id AND t.alarm_id = intake_alarms.alarm_id)"
    )


def downgrade() -> None:
    with op.batch_alter_table("intake_alarms") as batch:
        batch.drop_column("is_test")
