"""Tutor conversations: conversations, their messages, and the idempotency keys of turns.

Revision ID: 0001
Revises: (none)
Create Date: 2026-11-30 06:47:49.886033
"""
from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = '0001'
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table('conversations',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('client', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('scenario', sa.String(length=500), nullable=False),
    sa.Column('level', sa.String(length=2), nullable=True),
    sa.Column('native_language', sa.String(length=64), nullable=True),
    sa.Column('language', sa.String(length=35), nullable=False),
    sa.Column('voice', sa.String(length=100), nullable=True),
    sa.Column('message_count', sa.Integer(), nullable=False),
    sa.Column('summary', sa.Text(), nullable=False),
    sa.Column('summarized_count', sa.Integer(), nullable=False),
    sa.Column('turn_token', sa.String(length=32), nullable=True),
    sa.Column('turn_until', sa.DateTime(timezone=True), nullable=True),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.Column('updated_at', sa.DateTime(timezone=True), nullable=False),
    sa.PrimaryKeyConstraint('id')
    )
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.create_index('ix_conversations_owner_updated', ['client', 'user_id', 'updated_at', 'id'], unique=False)
        batch_op.create_index('ix_conversations_updated', ['updated_at'], unique=False)
        batch_op.create_index('ix_conversations_created', ['created_at'], unique=False)

    op.create_table('messages',
    sa.Column('id', sa.String(length=32), nullable=False),
    sa.Column('conversation_id', sa.String(length=32), nullable=False),
    sa.Column('client', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('seq', sa.Integer(), nullable=False),
    sa.Column('role', sa.String(length=8), nullable=False),
    sa.Column('text', sa.Text(), nullable=False),
    sa.Column('corrections', sa.JSON(), nullable=False),
    sa.Column('audio_url', sa.String(length=500), nullable=True),
    sa.Column('cost_usd', sa.Double(), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('id'),
    sa.UniqueConstraint('conversation_id', 'seq', name='uq_messages_conversation_seq')
    )
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.create_index('ix_messages_owner', ['client', 'user_id'], unique=False)
        batch_op.create_index('ix_messages_created', ['created_at'], unique=False)

    op.create_table('turn_keys',
    sa.Column('conversation_id', sa.String(length=32), nullable=False),
    sa.Column('key', sa.String(length=255), nullable=False),
    sa.Column('client', sa.String(length=128), nullable=False),
    sa.Column('user_id', sa.String(length=128), nullable=False),
    sa.Column('request_hash', sa.String(length=64), nullable=False),
    sa.Column('learner_message_id', sa.String(length=32), nullable=False),
    sa.Column('tutor_message_id', sa.String(length=32), nullable=False),
    sa.Column('created_at', sa.DateTime(timezone=True), nullable=False),
    sa.ForeignKeyConstraint(['conversation_id'], ['conversations.id'], ondelete='CASCADE'),
    sa.PrimaryKeyConstraint('conversation_id', 'key')
    )
    with op.batch_alter_table('turn_keys', schema=None) as batch_op:
        batch_op.create_index(batch_op.f('ix_turn_keys_created_at'), ['created_at'], unique=False)



def downgrade() -> None:
    with op.batch_alter_table('turn_keys', schema=None) as batch_op:
        batch_op.drop_index(batch_op.f('ix_turn_keys_created_at'))

    op.drop_table('turn_keys')
    with op.batch_alter_table('messages', schema=None) as batch_op:
        batch_op.drop_index('ix_messages_created')
        batch_op.drop_index('ix_messages_owner')

    op.drop_table('messages')
    with op.batch_alter_table('conversations', schema=None) as batch_op:
        batch_op.drop_index('ix_conversations_created')
        batch_op.drop_index('ix_conversations_updated')
        batch_op.drop_index('ix_conversations_owner_updated')

    op.drop_table('conversations')
