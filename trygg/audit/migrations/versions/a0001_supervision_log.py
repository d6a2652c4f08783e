"""the supervision log, as the old single chain made it at 0006 (its revision 0004)

Revision ID: a0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "a0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "supervision_log",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("actor", sa.String(length=128), nullable=False),
        sa.Column("action", sa.String(length=64), nullable=False),
        sa.Column("client_ref", sa.String(length=128), nullable=True),
        sa.Column("subject", sa.String(length=128), nullable=True),
        sa.Column("details", sa.JSON(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("hash", sa.String(length=64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_supervision_log")),
        sa.UniqueConstraint("prev_hash", name=op.f("uq_supervision_log_prev_hash")),
        sa.UniqueConstraint("hash", name=op.f("uq_supervision_log_hash")),
    )
    op.create_index("ix_supervision_log_client", "supervision_log", ["client_ref", "at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_supervision_log_client", table_name="supervision_log")
    op.drop_table("supervision_log")
