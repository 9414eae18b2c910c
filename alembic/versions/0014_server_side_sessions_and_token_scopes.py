"""server-side sessions, user ids never reused, token scopes

A signed-in browser is a `web_session` row (the cookie holds a random id, kept here as its
sha256): signing out deletes it. On SQLite `web_user` is rebuilt with AUTOINCREMENT so a removed
user's id is never handed to the next user (PostgreSQL's sequence never went back). API tokens
get a `scope`: "full" (every token made before keeps working as it did) or "read".

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-08 04:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import watcher.store.models

revision: str = "0014"
down_revision: str | None = "0019"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TOKEN_COLUMNS = "id, user_id, name, token_hash, created_at, last_used_at"


def upgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_users(autoincrement=True)
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("scope", sqlmodel.sql.sqltypes.AutoString(length=16), server_default="full", nullable=False)
        )
    op.create_table(
        "web_session",
        sa.Column("id_hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("created_at", watcher.store.models.UTCDateTime(), nullable=False),
        sa.Column("last_seen_at", watcher.store.models.UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["web_user.id"]),
        sa.PrimaryKeyConstraint("id_hash"),
    )
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_web_session_user_id"), ["user_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("web_session", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_web_session_user_id"))
    op.drop_table("web_session")
    with op.batch_alter_table("api_token", schema=None) as batch_op:
        batch_op.drop_column("scope")
    if op.get_bind().dialect.name == "sqlite":
        _rebuild_users(autoincrement=False)


def _rebuild_users(*, autoincrement: bool) -> None:
    """SQLite cannot add AUTOINCREMENT to a table: web_user is copied into a new one. The tokens
    that point at it are set aside meanwhile (dropping a parent with children fails while foreign
    keys are enforced, and they are: PRAGMA foreign_keys cannot change inside the transaction)."""
    op.execute(f"CREATE TEMP TABLE keep_api_token AS SELECT {TOKEN_COLUMNS} FROM api_token")
    op.execute("DELETE FROM api_token")
    with op.batch_alter_table(
        "web_user", schema=None, recreate="always", table_kwargs={"sqlite_autoincrement": autoincrement}
    ):
        pass
    op.execute(f"INSERT INTO api_token ({TOKEN_COLUMNS}) SELECT {TOKEN_COLUMNS} FROM keep_api_token")
    op.execute("DROP TABLE keep_api_token")
