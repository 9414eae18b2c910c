"""registry version history

A study's versions may carry the registry's own version number and submission day (read from its
version history, or cited after a poll); changes read from that history are `historical` (never
mailed); `history_backfill` is the backfill's queue and progress, one row per study.

Revision ID: 0018
Revises: 0013
Create Date: 2026-12-08 04:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

from watcher.store.models import UTCDateTime

revision: str = "0018"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "history_backfill",
        sa.Column("nct_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("status", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("queued_at", UTCDateTime(), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sqlmodel.sql.sqltypes.AutoString(), nullable=True),
        sa.Column("done_at", UTCDateTime(), nullable=True),
        sa.Column("versions", sa.Integer(), server_default="0", nullable=False),
        sa.Column("newest", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("nct_id"),
    )
    with op.batch_alter_table("history_backfill", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_history_backfill_status"), ["status"], unique=False)

    with op.batch_alter_table("study_version", schema=None) as batch_op:
        batch_op.add_column(sa.Column("registry_version", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("registry_date", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True))
        batch_op.add_column(sa.Column("from_history", sa.Boolean(), server_default=sa.false(), nullable=False))

    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.add_column(sa.Column("historical", sa.Boolean(), server_default=sa.false(), nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.drop_column("historical")
    with op.batch_alter_table("study_version", schema=None) as batch_op:
        batch_op.drop_column("from_history")
        batch_op.drop_column("registry_date")
        batch_op.drop_column("registry_version")
    with op.batch_alter_table("history_backfill", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_history_backfill_status"))
    op.drop_table("history_backfill")
