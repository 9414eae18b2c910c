"""change alerted and suppressed_by: changes a watch rule held back are stored, never mailed

Revision ID: 0008
Revises: 0006
Create Date: 2026-12-01 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel
from alembic import op


revision: str = '0008'
down_revision: str | None = '0006'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # every change stored before rules existed was alerted
    with op.batch_alter_table('change', schema=None) as batch_op:
        batch_op.add_column(sa.Column('alerted', sa.Boolean(), nullable=False, server_default=sa.true()))
        batch_op.add_column(sa.Column('suppressed_by', sqlmodel.sql.sqltypes.AutoString(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table('change', schema=None) as batch_op:
        batch_op.drop_column('suppressed_by')
        batch_op.drop_column('alerted')
