"""the DC-09 registry: an account (with receiver and line) mapped to a device, with its AES key

Revision ID: g0005
Revises: g0004
Create Date: 2026-11-30

Issue 11 (SIA DC-09 receiver). ``receiver`` and ``line`` are '' for "any".
"""

import sqlalchemy as sa
from alembic import op

revision = "g0005"
down_revision = "g0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "dc09_accounts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("account", sa.String(length=16), nullable=False),
        sa.Column("receiver", sa.String(length=6), nullable=False),
        sa.Column("line", sa.String(length=6), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("aes_key", sa.String(length=64), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_dc09_accounts_device_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_dc09_accounts")),
        sa.UniqueConstraint("account", "receiver", "line", name="uq_dc09_accounts_account"),
    )
    with op.batch_alter_table("dc09_accounts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_dc09_accounts_device_id"), ["device_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("dc09_accounts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_dc09_accounts_device_id"))
    op.drop_table("dc09_accounts")
