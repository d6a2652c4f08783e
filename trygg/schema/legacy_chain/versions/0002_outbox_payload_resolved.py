"""outbox rows can carry a payload (resolve); gateway-raised alarms can be resolved by the gateway

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("payload", sa.JSON(), nullable=True))
    with op.batch_alter_table("intake_alarms") as batch:
        batch.add_column(sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("intake_alarms") as batch:
        batch.drop_column("resolved_at")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("payload")
