"""recipient preferences: unsubscribe, own schedule, pause; skipped deliveries

Revision ID: 0012
Revises: 0010
Create Date: 2026-12-01 11:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import watcher.store.models


revision: str = "0012"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "recipient_preference",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("watch", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("recipient", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=False),
        sa.Column("unsubscribed_at", watcher.store.models.UTCDateTime(), nullable=True),
        sa.Column("schedule", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=True),
        sa.Column("paused_at", watcher.store.models.UTCDateTime(), nullable=True),
        sa.Column("paused_until", watcher.store.models.UTCDateTime(), nullable=True),
        sa.Column("pause_changes", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("last_digest_at", watcher.store.models.UTCDateTime(), nullable=True),
        sa.Column("updated_at", watcher.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("watch", "recipient", name="uq_recipient_preference_watch_recipient"),
    )
    with op.batch_alter_table("recipient_preference", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_recipient_preference_recipient"), ["recipient"], unique=False)
        batch_op.create_index(batch_op.f("ix_recipient_preference_watch"), ["watch"], unique=False)

    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skip_reason", sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("delivery", schema=None) as batch_op:
        batch_op.drop_column("skip_reason")

    with op.batch_alter_table("recipient_preference", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_recipient_preference_watch"))
        batch_op.drop_index(batch_op.f("ix_recipient_preference_recipient"))

    op.drop_table("recipient_preference")
