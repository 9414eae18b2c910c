"""milestones and calendar events

What a watch has been told of its studies' milestones (results overdue, an estimated date passed),
since when it follows them, and each calendar event's last published day and SEQUENCE (#23).

Revision ID: 0021
Revises: 0013
Create Date: 2026-12-08 04:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import sqlmodel

import watcher.store.models

revision: str = "0021"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "milestone_mark",
        sa.Column("watch", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("nct_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("kind", sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
        sa.Column("marker", sqlmodel.sql.sqltypes.AutoString(length=20), nullable=False),
        sa.Column("noted_at", watcher.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("watch", "nct_id", "kind", "marker"),
    )
    op.create_table(
        "milestone_watch",
        sa.Column("watch", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("since", watcher.store.models.UTCDateTime(), nullable=False),
        sa.Column("passed_on", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=True),
        sa.PrimaryKeyConstraint("watch"),
    )
    op.create_table(
        "calendar_event",
        sa.Column("nct_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("event", sqlmodel.sql.sqltypes.AutoString(length=24), nullable=False),
        sa.Column("day", sqlmodel.sql.sqltypes.AutoString(length=10), nullable=False),
        sa.Column("sequence", sa.Integer(), nullable=False),
        sa.Column("updated_at", watcher.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("nct_id", "event"),
    )


def downgrade() -> None:
    op.drop_table("calendar_event")
    op.drop_table("milestone_watch")
    op.drop_table("milestone_mark")
