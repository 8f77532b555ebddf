"""Running a step on another thread to see whether it waits: its end signalled, whatever it raised kept."""
from __future__ import annotations

import threading
from typing import Callable


def in_background(step: Callable[[], object]) -> tuple[threading.Event, list[BaseException]]:
    """Start ``step`` on a daemon thread; (set when it ended, what it raised)."""
    done, errors = threading.Event(), []

    def run() -> None:
        try:
            step()
        except BaseException as exc:  # the test asserts on it
            errors.append(exc)
        finally:
            done.set()

    threading.Thread(target=run, daemon=True).start()
    return done, errors
