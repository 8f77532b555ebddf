"""The component report shared by /api/health, /health/ready and /health/cache."""
from __future__ import annotations

from typing import Any

from backend.composition import Backend


def component_report(backend: Backend) -> dict[str, Any]:
    """Report api, cache and providers, and derive the overall status with its reasons."""
    settings = backend.settings
    cache = backend.shared.health()
    providers = {provider.name: {"configured": provider.configured, "breaker": provider.breaker.state()["state"]}
                 for provider in backend.providers}
    reasons = [f"{name} is not configured" for name, p in providers.items() if not p["configured"]]
    reasons += [f"{name} circuit breaker is {p['breaker']}" for name, p in providers.items()
                if p["configured"] and p["breaker"] != "closed"]
    if cache["fallback_active"]:
        reasons.append("redis is unreachable: serving from the local fallback")
    if cache["disk"] == "failing":
        reasons.append("the cache disk is failing (full or unwritable): serving from memory")
    database = backend.database.health()
    if database["status"] != "ok":
        reasons.append("the database is unreachable: conversations and learner data answer 503")
    in_use = [p for p in providers.values() if p["configured"]]
    usable = [p for p in in_use if p["breaker"] not in ("open", "forced_open")]
    if in_use and not usable:
        status = "unhealthy"  # nothing that is configured can be called
    else:
        status = "degraded" if reasons else "healthy"
    return {"status": status, "reasons": reasons,
            "components": {"api": {"status": "ok", "environment": settings.app_env}, "cache": cache,
                           "database": database, "providers": providers}}
