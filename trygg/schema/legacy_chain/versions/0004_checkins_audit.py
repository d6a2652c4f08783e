"""camera check-ins (consents, skipped nights, check-ins) and the supervision log

Revision ID: 0004
Revises: 0002
Create Date: 2026-11-24
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0002"
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


def downgrade() -> None:
    op.drop_index("ix_checkins_state_due", table_name="checkins")
    op.drop_table("checkins")
    op.drop_table("checkin_skipped_nights")
    op.drop_index(op.f("ix_checkin_consents_client_ref"), table_name="checkin_consents")
    op.drop_table("checkin_consents")
    op.drop_index("ix_supervision_log_client", table_name="supervision_log")
    op.drop_table("supervision_log")
