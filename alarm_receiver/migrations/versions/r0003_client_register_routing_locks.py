"""client register (issue 10): clients, call lists, device links with history, patrol areas and shifts, lock
states; queue_alarms.client_id and routing_missing

``queue_alarms`` gets plain ``add_column`` (no foreign key, no batch copy: SQLite with foreign keys on refuses to
drop a table ``alarm_events`` references). Old alarms get no client and ``routing_missing`` false.

Revision ID: r0003
Revises: r0002
Create Date: 2026-11-30 01:05:08.470515
"""

import sqlalchemy as sa
from alembic import op

import trygg.db

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "clients",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("ref", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("street", sa.String(length=200), nullable=False),
        sa.Column("postcode", sa.String(length=16), nullable=False),
        sa.Column("town", sa.String(length=100), nullable=False),
        sa.Column("floor", sa.String(length=32), nullable=True),
        sa.Column("entrance", sa.String(length=100), nullable=True),
        sa.Column("door_code", sa.String(length=100), nullable=True),
        sa.Column("lat", sa.Float(), nullable=True),
        sa.Column("lon", sa.Float(), nullable=True),
        sa.Column("language", sa.String(length=32), nullable=True),
        sa.Column("hard_of_hearing", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("speech_impaired", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("interpreter", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("practical_notes", sa.Text(), nullable=True),
        sa.Column("health_notes", sa.Text(), nullable=True),
        sa.Column("care_unit", sa.String(length=100), nullable=True),
        sa.Column("area", sa.String(length=64), nullable=True),
        sa.Column("key_safe_location", sa.String(length=200), nullable=True),
        sa.Column("key_safe_code", sa.String(length=64), nullable=True),
        sa.Column("key_number", sa.String(length=32), nullable=True),
        sa.Column("created_at", trygg.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", trygg.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_clients")),
        sa.UniqueConstraint("ref", name=op.f("uq_clients_ref")),
    )
    op.create_table(
        "lock_states",
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("door", sa.String(length=16), nullable=True),
        sa.Column("battery_pct", sa.Integer(), nullable=True),
        sa.Column("updated_at", trygg.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("device_id", name=op.f("pk_lock_states")),
    )
    op.create_table(
        "patrol_areas",
        sa.Column("code", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.PrimaryKeyConstraint("code", name=op.f("pk_patrol_areas")),
    )
    op.create_table(
        "patrol_shifts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("username", sa.String(length=64), nullable=False),
        sa.Column("area", sa.String(length=64), nullable=False),
        sa.Column("started_at", trygg.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("ended_at", trygg.db.UtcDateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_patrol_shifts")),
    )
    with op.batch_alter_table("patrol_shifts", schema=None) as batch_op:
        batch_op.create_index("ix_patrol_shifts_open", ["ended_at", "area"], unique=False)

    op.create_table(
        "client_contacts",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("relation", sa.String(length=64), nullable=True),
        sa.Column("phone", sa.String(length=32), nullable=False),
        sa.Column("phone_digits", sa.String(length=32), nullable=False),
        sa.Column("has_key", sa.Boolean(), nullable=False),
        sa.Column("call_at_night", sa.Boolean(), nullable=False),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_client_contacts_client_id_clients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_contacts")),
    )
    with op.batch_alter_table("client_contacts", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_contacts_client_id"), ["client_id"], unique=False)
        batch_op.create_index(batch_op.f("ix_client_contacts_phone_digits"), ["phone_digits"], unique=False)

    op.create_table(
        "client_devices",
        sa.Column("id", sa.Integer(), autoincrement=True, nullable=False),
        sa.Column("client_id", sa.Integer(), nullable=False),
        sa.Column("device_id", sa.String(length=64), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("linked_at", trygg.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("unlinked_at", trygg.db.UtcDateTime(timezone=True), nullable=True),
        sa.ForeignKeyConstraint(
            ["client_id"], ["clients.id"], name=op.f("fk_client_devices_client_id_clients"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_client_devices")),
    )
    with op.batch_alter_table("client_devices", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_client_devices_client_id"), ["client_id"], unique=False)
        batch_op.create_index("ix_client_devices_device", ["device_id", "unlinked_at"], unique=False)

    op.add_column("queue_alarms", sa.Column("client_id", sa.Integer(), nullable=True))
    op.add_column("queue_alarms", sa.Column("routing_missing", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_index(op.f("ix_queue_alarms_client_id"), "queue_alarms", ["client_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_queue_alarms_client_id"), table_name="queue_alarms")
    op.drop_column("queue_alarms", "routing_missing")
    op.drop_column("queue_alarms", "client_id")

    with op.batch_alter_table("client_devices", schema=None) as batch_op:
        batch_op.drop_index("ix_client_devices_device")
        batch_op.drop_index(batch_op.f("ix_client_devices_client_id"))

    op.drop_table("client_devices")
    with op.batch_alter_table("client_contacts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_client_contacts_phone_digits"))
        batch_op.drop_index(batch_op.f("ix_client_contacts_client_id"))

    op.drop_table("client_contacts")
    with op.batch_alter_table("patrol_shifts", schema=None) as batch_op:
        batch_op.drop_index("ix_patrol_shifts_open")

    op.drop_table("patrol_shifts")
    op.drop_table("patrol_areas")
    op.drop_table("lock_states")
    op.drop_table("clients")
