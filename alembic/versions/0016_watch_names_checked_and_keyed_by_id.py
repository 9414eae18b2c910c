"""watch names checked, and what belongs to a watch keyed by its id

#25: a watch name is one line of visible text of at most 100 characters (watcher.watch.name_problem,
the one rule of the TOML file, the form and the API). Names stored before the rule are reported
here, one warning each with the watch's id, never renamed silently: the owner renames the watch
or an admin archives it (`trialwatch watch archive --id N`).

W18: a watch's changes, audit and recipients' choices are keyed by the watch's id (`watch_id`),
so a new watch taking an archived watch's name starts with none of them; names are unique among
the active watches only (a partial unique index), and archived watches are kept, not deleted.
The rows stored before are given the id of the watch of their name; a row older than the web
watch that has its name now belonged to an earlier watch of that name (deleted when the name was
taken again, before this revision) and is left without one.

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-08 04:30:00
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import watcher.store.models
from watcher.watch import name_problem

revision: str = "0016"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("watcher.store.migrations")
ACTIVE = sa.text("archived_at IS NULL")
# table -> its time column: a row older than a web watch of its name is not that watch's
KEYED = {"change": "detected_at", "audit": "at", "recipient_preference": "updated_at"}


def upgrade() -> None:
    connection = op.get_bind()
    _drop_unique_name(connection.dialect.name)
    op.create_index("uq_watch_active_name", "watch", ["name"], unique=True, sqlite_where=ACTIVE, postgresql_where=ACTIVE)
    for table in KEYED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.add_column(sa.Column("watch_id", sa.Integer(), nullable=True))
            batch_op.create_foreign_key(f"fk_{table}_watch_id_watch", "watch", ["watch_id"], ["id"])
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.create_index("ix_change_watch_id_detected_at_id", ["watch_id", "detected_at", "id"], unique=False)
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_audit_watch_id"), ["watch_id"], unique=False)
    with op.batch_alter_table("recipient_preference", schema=None) as batch_op:
        batch_op.drop_constraint("uq_recipient_preference_watch_recipient", type_="unique")
        batch_op.create_unique_constraint("uq_recipient_preference_watch_id_recipient", ["watch_id", "recipient"])
    for table, at in KEYED.items():
        connection.execute(
            sa.text(
                f"UPDATE {table} SET watch_id = (SELECT watch.id FROM watch WHERE watch.name = {table}.watch "
                f"AND (watch.source = 'config' OR watch.created_at <= {table}.{at}))"
            )
        )
    report_bad_names(connection)


def _drop_unique_name(dialect: str) -> None:
    """The unique constraint on watch.name, unnamed in 0006 (PostgreSQL named it watch_name_key)."""
    if dialect == "postgresql":
        op.drop_constraint("watch_name_key", "watch", type_="unique")
        return
    with op.batch_alter_table("watch", schema=None, copy_from=_watch_table(), recreate="always"):
        pass  # the table copied as it is declared here: without the unique constraint


def _watch_table() -> sa.Table:
    """The watch table of 0006, without its unnamed unique constraint on the name."""
    return sa.Table(
        "watch",
        sa.MetaData(),
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sqlmodel.sql.sqltypes.AutoString(length=200), nullable=False),
        sa.Column("source", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("owner", sqlmodel.sql.sqltypes.AutoString(length=320), nullable=True),
        sa.Column("definition", sa.JSON(), nullable=False),
        sa.Column("created_at", watcher.store.models.UTCDateTime(), nullable=False),
        sa.Column("updated_at", watcher.store.models.UTCDateTime(), nullable=False),
        sa.Column("archived_at", watcher.store.models.UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )


def report_bad_names(connection: sa.Connection) -> None:
    """One warning per active watch whose stored name breaks the rule."""
    rows = connection.execute(sa.text("SELECT id, name, source FROM watch WHERE archived_at IS NULL ORDER BY id"))
    for watch_id, name, source in rows:
        problem = name_problem(name)
        if problem is None:
            continue
        remedy = (
            "rename it in the config file"
            if source == "config"
            else f"rename it, or archive it with `trialwatch watch archive --id {watch_id}`"
        )
        log.warning("watch %r (id %s): %s; %s", name, watch_id, problem, remedy)


def downgrade() -> None:
    connection = op.get_bind()
    # one choice per (watch name, recipient) and one watch per name again: the newest kept
    connection.execute(
        sa.text(
            "DELETE FROM recipient_preference WHERE id NOT IN "
            "(SELECT MAX(id) FROM recipient_preference GROUP BY watch, recipient)"
        )
    )
    with op.batch_alter_table("recipient_preference", schema=None) as batch_op:
        batch_op.drop_constraint("uq_recipient_preference_watch_id_recipient", type_="unique")
        batch_op.create_unique_constraint("uq_recipient_preference_watch_recipient", ["watch", "recipient"])
    with op.batch_alter_table("audit", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_audit_watch_id"))
    with op.batch_alter_table("change", schema=None) as batch_op:
        batch_op.drop_index("ix_change_watch_id_detected_at_id")
    for table in KEYED:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_constraint(f"fk_{table}_watch_id_watch", type_="foreignkey")
            batch_op.drop_column("watch_id")
    connection.execute(
        sa.text("DELETE FROM watch WHERE id NOT IN (SELECT MAX(id) FROM watch GROUP BY name)")
    )
    op.drop_index("uq_watch_active_name", table_name="watch")
    with op.batch_alter_table("watch", schema=None) as batch_op:
        batch_op.create_unique_constraint("watch_name_key", ["name"])  # PostgreSQL's name of 0006's
