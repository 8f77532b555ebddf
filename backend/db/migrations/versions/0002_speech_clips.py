"""Spoken tutor replies: speech_clips (what was synthesised, for whom; the audio lives in the cache).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-30 07:47:11.476155
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0002'
down_revision = '0001'
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('speech_clips',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('conversation_id', sa.String(length=32), nullable=False),
    sa.Column('message_id', sa.String(length=32), nullable=False),
    sa.Column('client', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('language', sa.String(length=35), nullable=False),
    sa.Column('voice', sa.String(length=100), nullable=False),
    sa.Column('rate', sa.Double(), nullable=False),
    sa.Column('format', sa.String(length=8), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
    sa.ForeignKeyConstraint(['message_id'], ['messages.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('speech_clips', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_speech_clips_conversation_id'), ['conversation_id'], unique=False)
        batch_op.create_index('ix_speech_clips_owner', ['client', 'user_id'], unique=False)


def downgrade() -> None:
    with op.batch_alter_table('speech_clips', schema=None) as batch_op:
        batch_op.drop_index('ix_speech_clips_owner')
        batch_op.drop_index(batch_op.f('ix_speech_clips_conversation_id'))

    op.drop_table('speech_clips')
