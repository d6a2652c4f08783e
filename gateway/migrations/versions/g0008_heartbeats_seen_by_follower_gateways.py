"""heartbeats seen by follower gateways (several gateways: the leader reads what the others heard)

Revision ID: g0008
Revises: g0007
Create Date: 2026-11-30 01:13:51.370599
"""

import sqlalchemy as sa
from alembic import op

revision = "g0008"
down_revision = "g0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "heartbeats_seen",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column(
            "written_at",
            sa.DateTime(timezone=True),
            server_default=sa.func.now(),
            nullable=False,
        ),
        sa.Column("gateway", sa.String(length=64), nullable=False),
        sa.Column("heartbeat", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_heartbeats_seen")),
    )
    with op.batch_alter_table("heartbeats_seen", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_heartbeats_seen_written_at"), ["written_at"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("heartbeats_seen", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_heartbeats_seen_written_at"))

    op.drop_table("heartbeats_seen")
