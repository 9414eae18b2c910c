"""readouts: meeting abstracts and preprints (Crossref, Europe PMC)

An article knows what it is (`feed_item.item_type`: meeting_abstract, preprint or article), so does
an article change (`change.item_type`, what `/articles` filters on); each Crossref journal and each
watch's Europe PMC searches keep their baseline and health in `readout_state` (#20).

Revision ID: 0019
Revises: 0013
Create Date: 2026-12-08 04:50:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op

import watcher.store.models


revision: str = '0019'
down_revision: str | None = '0021'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table('readout_state',
    sa.Column('name', sqlmodel.sql.sqltypes.AutoString(length=220), nullable=False),
    sa.Column('query_signature', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('baseline_at', watcher.store.models.UTCDateTime(), nullable=True),
    sa.Column('last_poll_at', watcher.store.models.UTCDateTime(), nullable=True),
    sa.Column('last_success_at', watcher.store.models.UTCDateTime(), nullable=True),
    sa.Column('last_error', sqlmodel.sql.sqltypes.AutoString(), nullable=True),
    sa.Column('failing_since', watcher.store.models.UTCDateTime(), nullable=True),
    sa.Column('request_count', sa.Integer(), server_default='0', nullable=False),
    sa.PrimaryKeyConstraint('name')
    )
    with op.batch_alter_table('change', schema=None) as batch_op:
        batch_op.add_column(sa.Column('item_type', sqlmodel.sql.sqltypes.AutoString(length=20), nullable=True))
    with op.batch_alter_table('feed_item', schema=None) as batch_op:
        batch_op.add_column(sa.Column('item_type', sqlmodel.sql.sqltypes.AutoString(length=20),
                                      server_default='article', nullable=False))
    op.execute("UPDATE change SET item_type = 'article' WHERE kind IN ('new_article', 'publication')")


def downgrade() -> None:
    with op.batch_alter_table('feed_item', schema=None) as batch_op:
        batch_op.drop_column('item_type')
    with op.batch_alter_table('change', schema=None) as batch_op:
        batch_op.drop_column('item_type')
    op.drop_table('readout_state')
