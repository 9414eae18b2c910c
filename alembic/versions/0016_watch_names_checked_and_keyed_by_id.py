"""watch names checked, and what belongs to a watch keyed by its id

#25: a watch name is one line of visible text of at most 100 characters (watcher.watch.name_problem,
the one rule of the TOML file, the form and the API). Names stored before the rule are reported
here, one warning each with the watch's id, never renamed silently: the owner renames the watch
or an admin archives it (`trialwatch watch archive --id N`).

Revision ID: 0016
Revises: 0013
Create Date: 2026-12-08 04:30:00
"""

import logging
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from watcher.watch import name_problem

revision: str = "0016"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

log = logging.getLogger("watcher.store.migrations")


def upgrade() -> None:
    report_bad_names(op.get_bind())


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
    pass
