"""The providers of one app, by name: each one's client (None when it is not configured), breaker and bulkhead.
Built once in the composition root; health, metrics, the breaker admin and the CLI list providers from here."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterator

from backend.resilience.breaker import CircuitBreaker
from backend.resilience.bulkhead import Bulkhead


@dataclass(frozen=True)
class Provider:
    """One upstream service as the policy sees it."""

    name: str
    client: Any | None  # None: not configured
    breaker: CircuitBreaker
    bulkhead: Bulkhead

    @property
    def configured(self) -> bool:
        """Whether calls can be made."""
        return self.client is not None


class ProviderRegistry:
    """Providers in the order they were registered (primary before fallback)."""

    def __init__(self, *providers: Provider):
        self._providers = {provider.name: provider for provider in providers}

    def __getitem__(self, name: str) -> Provider:
        return self._providers[name]

    def __contains__(self, name: object) -> bool:
        return name in self._providers

    def __iter__(self) -> Iterator[Provider]:
        return iter(self._providers.values())

    def names(self) -> list[str]:
        """Every provider's name."""
        return list(self._providers)

    @property
    def breakers(self) -> dict[str, CircuitBreaker]:
        """Every provider's breaker, by name."""
        return {provider.name: provider.breaker for provider in self}

    def close(self) -> None:
        """Release every configured client's connections and pools (on worker exit)."""
        for provider in self:
            if provider.client is not None:
                provider.client.close()
