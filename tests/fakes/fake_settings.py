"""A fake's settings table: defaults, how each is read from text, the allowed values of some."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable


@dataclass(frozen=True)
class SettingsTable:
    """A fake's settings: defaults, how each is read from text, and the allowed values of some."""

    defaults: dict[str, Any]
    types: dict[str, Callable[[Any], Any]]
    choices: dict[str, tuple] = field(default_factory=dict)

    def normalize(self, name, value):
        """Check and convert one config value; raise ValueError on nonsense."""
        if name not in self.defaults:
            raise ValueError(f"unknown setting {name!r}; known: {', '.join(self.defaults)}")
        value = None if value is None else self.types[name](value)
        if value is not None and value not in self.choices.get(name, (value,)):
            raise ValueError(f"{name} must be one of {', '.join(self.choices[name])}")
        if name == "error_rate" and not 0 <= value <= 1:
            raise ValueError("error_rate must be between 0 and 1")
        if name == "chunk_size" and value < 1:
            raise ValueError("chunk_size must be at least 1")
        if name == "fault_after_chunks" and value < 0:
            raise ValueError("fault_after_chunks must be 0 (half the chunks) or more")
        return value
