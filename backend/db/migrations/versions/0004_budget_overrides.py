"""Per-caller daily budget overrides: budget_overrides (an operator's USD budget for one caller; NULL: unlimited).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-30 10:30:00.000000
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0004'
down_revision = '0003'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('budget_overrides',
    sa.Column('client', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('daily_usd', sa.Double(), nullable=True),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('client', 'user_id')
    )


def downgrade() -> None:
    op.drop_table('budget_overrides')
