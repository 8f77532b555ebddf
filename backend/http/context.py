"""The app's services (built by backend.composition in create_app), typed, for views, hooks and commands."""
from __future__ import annotations

from typing import TYPE_CHECKING

from flask import Flask, current_app

if TYPE_CHECKING:
    from backend.composition import Backend

EXTENSION = "backend"  # where create_app keeps the Backend in app.extensions


def backend_of(app: Flask) -> Backend:
    """The Backend of ``app``; a clear error when the app was not built by create_app."""
    try:
        return app.extensions[EXTENSION]
    except KeyError:
        raise RuntimeError("This Flask app has no Backend-AI services: build it with backend.create_app()") from None


def current_backend() -> Backend:
    """The Backend of the app handling the current request or command."""
    return backend_of(current_app)  # type: ignore[arg-type]  # the proxy stands for the app
