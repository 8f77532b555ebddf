"""Learner data: the database of one worker (engine.py), its models, repositories and Alembic migrations."""
