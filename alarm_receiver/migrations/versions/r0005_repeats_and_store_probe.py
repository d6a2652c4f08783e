"""repeated alarms collapsed into their open queue item; the store's probe row (issue 8, points 6 and 11)

``queue_alarms.repeats``/``last_repeat_at``: how many alarms of the same type the same device sent while the item
was open, and the latest one's time; ``device_cancelled_at``: the device cancelled the item's own alarm while
repeats still stood; ``queue_repeats``: each of them under its own key (a resend stays a duplicate, a cancel finds
it, ``cancelled_at`` once the device cancelled it). ``receiver_store_probe``: the row ``/health`` rewrites to see that the store commits.

Revision ID: r0005
Revises: r0003
Create Date: 2026-11-30
"""

import sqlalchemy as sa
from alembic import op

revision = "r0005"
down_revision = "r0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("queue_alarms", schema=None) as batch_op:
        batch_op.add_column(sa.Column("repeats", sa.Integer(), nullable=False, server_default="0"))
        batch_op.add_column(sa.Column("last_repeat_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("device_cancelled_at", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "queue_repeats",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("alarm_pk", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("alarm_id", sa.String(length=64), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("device_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["alarm_pk"], ["queue_alarms.id"], name=op.f("fk_queue_repeats_alarm_pk_queue_alarms")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_repeats")),
        sa.UniqueConstraint("device_id", "alarm_id", name="uq_queue_repeats_key"),
    )
    op.create_index(op.f("ix_queue_repeats_alarm_pk"), "queue_repeats", ["alarm_pk"], unique=False)
    op.create_table(
        "receiver_store_probe",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("probed_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_receiver_store_probe")),
    )


def downgrade() -> None:
    op.drop_table("receiver_store_probe")
    op.drop_index(op.f("ix_queue_repeats_alarm_pk"), table_name="queue_repeats")
    op.drop_table("queue_repeats")
    # A plain DROP COLUMN (SQLite has it since 3.35): batch mode would copy queue_alarms, which others reference.
    op.drop_column("queue_alarms", "device_cancelled_at")
    op.drop_column("queue_alarms", "last_repeat_at")
    op.drop_column("queue_alarms", "repeats")
