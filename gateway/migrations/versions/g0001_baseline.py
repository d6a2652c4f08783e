"""the gateway's tables, as the old single chain made them at 0006 (its revisions 0001-0005)

A database of the old chain is stamped here instead of running this (trygg.schema.legacy).

Revision ID: g0001
Revises:
Create Date: 2026-12-01
"""

import sqlalchemy as sa
from alembic import op

revision = "g0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "devices",
        sa.Column("id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("client_ref", sa.String(length=128), nullable=True),
        sa.Column("location", sa.Text(), nullable=True),
        sa.Column("registered_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("installed_on", sa.Date(), nullable=True),
        sa.Column("firmware_version", sa.String(64), nullable=True),
        sa.Column("network", sa.String(16), nullable=True),
        sa.Column("supervision_class", sa.String(16), nullable=False, server_default="alarm"),
        sa.Column("area", sa.String(64), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_devices")),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("alarm_id", sa.String(length=64), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("delivered_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_outbox")),
    )
    op.create_index("ix_outbox_pending", "outbox", ["delivered_at", "id"], unique=False)
    op.create_table(
        "intake_alarms",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("alarm_id", sa.String(length=64), nullable=False),
        sa.Column("type", sa.String(length=32), nullable=False),
        sa.Column("priority", sa.Integer(), nullable=False),
        sa.Column("device_ts", sa.DateTime(timezone=True), nullable=False),
        sa.Column("stored_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("cancelled_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("resolved_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_intake_alarms_device_id_devices")),
        sa.PrimaryKeyConstraint("device_id", "alarm_id", name=op.f("pk_intake_alarms")),
    )
    op.create_table(
        "device_credentials",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(["device_id"], ["devices.id"], name=op.f("fk_device_credentials_device_id_devices")),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_device_credentials")),
    )
    op.create_table(
        "service_accounts",
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("password_hash", sa.String(length=255), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("username", name=op.f("pk_service_accounts")),
    )
    op.create_table(
        "checkin_consents",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_ref", sa.String(length=128), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("consented_by", sa.JSON(), nullable=False),
        sa.Column("consented_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("basis", sa.Text(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("window_start", sa.String(length=5), nullable=False),
        sa.Column("window_end", sa.String(length=5), nullable=False),
        sa.Column("times", sa.JSON(), nullable=False),
        sa.Column("max_look_s", sa.Float(), nullable=False),
        sa.Column("privacy", sa.String(length=16), nullable=False),
        sa.Column("audio", sa.Boolean(), nullable=False),
        sa.Column("recheck_min", sa.Integer(), nullable=False),
        sa.Column("escalation", sa.JSON(), nullable=False),
        sa.Column("look_on_alarm", sa.Boolean(), nullable=False),
        sa.Column("schedule_from", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("withdrawn_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("withdrawn_by", sa.String(length=128), nullable=True),
        sa.Column("withdrawn_reason", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["camera_id"], ["devices.id"], name=op.f("fk_checkin_consents_camera_id_devices")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_consents")),
    )
    op.create_index(op.f("ix_checkin_consents_client_ref"), "checkin_consents", ["client_ref"], unique=False)
    op.create_table(
        "checkin_skipped_nights",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=128), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_id"],
            ["checkin_consents.id"],
            name=op.f("fk_checkin_skipped_nights_consent_id_checkin_consents"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkin_skipped_nights")),
        sa.UniqueConstraint("consent_id", "night", name="uq_checkin_skipped_nights_consent_night"),
    )
    op.create_table(
        "checkins",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("consent_id", sa.Integer(), nullable=False),
        sa.Column("client_ref", sa.String(length=128), nullable=False),
        sa.Column("camera_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("night", sa.Date(), nullable=False),
        sa.Column("due_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("step", sa.Integer(), nullable=False),
        sa.Column("parent_id", sa.Integer(), nullable=True),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("raised_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("started_by", sa.String(length=128), nullable=True),
        sa.Column("look_id", sa.String(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("outcome_by", sa.String(length=128), nullable=True),
        sa.Column("outcome_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["consent_id"], ["checkin_consents.id"], name=op.f("fk_checkins_consent_id_checkin_consents")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_checkins")),
        sa.UniqueConstraint("consent_id", "kind", "due_at", name="uq_checkins_consent_kind_due"),
    )
    op.create_index("ix_checkins_state_due", "checkins", ["state", "due_at"], unique=False)
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
    op.drop_index("ix_install_tests_device_id", table_name="install_tests")
    op.drop_table("install_tests")
    op.drop_table("device_configs")
    op.drop_table("device_health")
    op.drop_index("ix_checkins_state_due", table_name="checkins")
    op.drop_table("checkins")
    op.drop_table("checkin_skipped_nights")
    op.drop_index(op.f("ix_checkin_consents_client_ref"), table_name="checkin_consents")
    op.drop_table("checkin_consents")
    op.drop_table("service_accounts")
    op.drop_table("device_credentials")
    op.drop_table("intake_alarms")
    op.drop_index("ix_outbox_pending", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("devices")
