"""the store's probe row: health sees a store that cannot commit even while no alarm comes (issue 8, point 11)

Revision ID: g0007
Revises: g0005
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "g0007"
down_revision = "g0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "gateway_store_probe",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("probed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_gateway_store_probe")),
    )


def downgrade() -> None:
    op.drop_table("gateway_store_probe")
