"""Who is asking: a client key's name and, within it, the learner (X-User-ID). Every stored row is theirs alone."""
from __future__ import annotations

import re
from dataclasses import dataclass

# The contract's X-User-ID: 1..128 of A-Z a-z 0-9 . _ : @ -
USER_ID = re.compile(r"^[A-Za-z0-9._:@-]{1,128}$")


@dataclass(frozen=True)
class Caller:
    """A client (the key's name) and one of its users ("" = the key's own data)."""

    client: str
    user_id: str = ""

    def __post_init__(self) -> None:
        if not self.client:
            raise ValueError("a caller needs a client name")
        if self.user_id and not USER_ID.match(self.user_id):
            raise ValueError("a user id is 1..128 of A-Z a-z 0-9 . _ : @ -")

    @classmethod
    def parse(cls, written: str) -> "Caller":
        """A caller as written in admin paths, the CLI and exports: KEYNAME:USERID, or KEYNAME alone. The user id may
        hold colons itself, so the key's name ends at the first one."""
        client, _, user_id = written.partition(":")
        return cls(client, user_id)

    def __str__(self) -> str:
        return f"{self.client}:{self.user_id}" if self.user_id else self.client
