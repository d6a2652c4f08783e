"""device registry fields; supervision state, remote configuration, installation tests

Revision ID: 0005
Revises: 0002
Create Date: 2026-11-23
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("devices") as batch:
        batch.add_column(sa.Column("installed_on", sa.Date(), nullable=True))
        batch.add_column(sa.Column("firmware_version", sa.String(64), nullable=True))
        batch.add_column(sa.Column("network", sa.String(16), nullable=True))
        batch.add_column(sa.Column("supervision_class", sa.String(16), nullable=False, server_default="alarm"))
        batch.add_column(sa.Column("area", sa.String(64), nullable=True))
    op.create_table(
        "device_health",
        sa.Column(
            "device_id",
            sa.String(64),
            sa.ForeignKey("devices.id", name="fk_device_health_device_id_devices"),
            primary_key=True,
        ),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("last_seen", sa.DateTime(timezone=True), nullable=True),
        sa.Column("status_since", sa.DateTime(timezone=True), nullable=True),
        sa.Column("battery_pct", sa.Integer(), nullable=True),
        sa.Column("mains", sa.Boolean(), nullable=True),
        sa.Column("signal_dbm", sa.Integer(), nullable=True),
        sa.Column("network", sa.String(16), nullable=True),
        sa.Column("firmware", sa.String(64), nullable=True),
        sa.Column("config_version", sa.Integer(), nullable=True),
        sa.Column("open_alarm_id", sa.String(64), nullable=True),
        sa.Column("flaps", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_health"),
    )
    op.create_table(
        "device_configs",
        sa.Column(
            "device_id",
            sa.String(64),
            sa.ForeignKey("devices.id", name="fk_device_configs_device_id_devices"),
            primary_key=True,
        ),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("heartbeat_interval_s", sa.Integer(), nullable=False),
        sa.Column("extra", sa.JSON(), nullable=False),
        sa.Column("changed_by", sa.String(64), nullable=False),
        sa.Column("changed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("applied_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("device_id", name="pk_device_configs"),
    )
    op.create_table(
        "install_tests",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column(
            "device_id",
            sa.String(64),
            sa.ForeignKey("devices.id", name="fk_install_tests_device_id_devices"),
            nullable=False,
        ),
        sa.Column("started_by", sa.String(64), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("deadline", sa.DateTime(timezone=True), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("alarm_id", sa.String(64), nullable=True),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("end_to_end_ms", sa.Float(), nullable=True),
        sa.Column("detail", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_install_tests"),
    )
    op.create_index("ix_install_tests_device_id", "install_tests", ["device_id"])


def downgrade() -> None:
    op.drop_index("ix_install_tests_device_id", "install_tests")
    op.drop_table("install_tests")
    op.drop_table("device_configs")
    op.drop_table("device_health")
    with op.batch_alter_table("devices") as batch:
        for column in ("area", "supervision_class", "network", "firmware_version", "installed_on"):
            batch.drop_column(column)
