"""the SCAIP unit registry: a unit's identity (cid, did, crd) mapped to a Trygg device (issue 11)

Revision ID: g0004
Revises: g0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "g0004"
down_revision = "g0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "scaip_units",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("cid", sa.String(16), nullable=False),
        sa.Column("did", sa.String(8), nullable=True),
        sa.Column("crd", sa.String(256), nullable=True),
        sa.Column("device_id", sa.String(64), nullable=False),
        sa.Column("mre", sa.Integer(), nullable=False),
        sa.Column("hbi", sa.Integer(), nullable=True),
        sa.Column("mrs_in_200", sa.Boolean(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_scaip_units_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_scaip_units")),
    )
    op.create_index("ix_scaip_units_identity", "scaip_units", ["cid", "did"], unique=True)
    op.create_index(op.f("ix_scaip_units_device_id"), "scaip_units", ["device_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_scaip_units_device_id"), table_name="scaip_units")
    op.drop_index("ix_scaip_units_identity", table_name="scaip_units")
    op.drop_table("scaip_units")
