"""The caller of a request, resolved once: the authenticated client's name and the validated X-User-ID."""
from __future__ import annotations

from flask import g, request

from backend.errors import ValidationFailed
from backend.schemas.caller import USER_ID, Caller


def current_caller() -> Caller:
    """The caller whose data this request may read and write (needs require_client_key first)."""
    if "caller" not in g:
        user_id = request.headers.get("X-User-ID")
        if user_id is not None and not USER_ID.match(user_id):
            raise ValidationFailed("X-User-ID must be 1..128 of A-Z a-z 0-9 . _ : @ -",
                                   details=[{"field": "X-User-ID", "message": "invalid user id"}], status=422)
        g.caller = Caller(g.client_name, user_id or "")
    return g.caller
