"""A caller's rights over their data (erase, export, what is stored), and the retention that purges the rest."""
from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from backend.db import conversations as conversation_repo
from backend.db import jobs as job_repo
from backend.db import learner_data as repo
from backend.db.engine import Database
from backend.db.models import utcnow
from backend.schemas.caller import Caller


@dataclass(frozen=True)
class Retention:
    """How long stored data is kept: conversations since their last update, finished jobs since they finished,
    idempotency keys since created."""

    conversation_days: int
    key_hours: int


class LearnerDataService:
    """Erase and export one caller's data; purge everyone's beyond retention."""

    def __init__(self, database: Database, retention: Retention):
        self._db = database
        self.retention = retention

    def erase(self, caller: Caller) -> dict[str, int]:
        """Delete everything the caller stored, in one transaction; how much of each kind (contract section 7)."""
        with self._db.session(write=True) as session:
            counts = repo.erase(session, caller)
        return {"conversations": counts["conversations"], "messages": counts["messages"], "jobs": counts["jobs"],
                "audio": counts["audio"]}

    def export(self, caller: Caller) -> dict[str, Any]:
        """Everything stored for the caller, read in one transaction (a consistent snapshot on PostgreSQL)."""
        with self._db.session() as session:
            return repo.export(session, caller)

    def usage_counts(self, caller: Caller) -> dict[str, int]:
        """How many conversations and jobs (in any state) the caller has."""
        with self._db.session() as session:
            return {"conversations": conversation_repo.count(session, caller),
                    "jobs": job_repo.count(session, caller)}

    def purge(self, *, now: datetime | None = None) -> dict[str, int]:
        """Delete conversations untouched and jobs finished for longer than the retention, and idempotency keys
        older than theirs, a batch per transaction so that no transaction runs long; how many of each."""
        now = now or utcnow()
        older_than = now - timedelta(days=self.retention.conversation_days)
        keys_older_than = now - timedelta(hours=self.retention.key_hours)
        total = {"conversations": 0, "messages": 0, "turn_keys": 0, "audio": 0, "jobs": 0}
        while True:
            with self._db.session(write=True) as session:
                counts = repo.purge(session, older_than=older_than, keys_older_than=keys_older_than)
            for name, count in counts.items():
                total[name] += count
            if counts["conversations"] == 0 and counts["jobs"] == 0:
                return total
