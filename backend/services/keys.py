"""Cache keys: namespaced, versioned, and a hash of the canonical request, never the raw payload."""
from __future__ import annotations

import hashlib
import json
from typing import Any


def cache_key(namespace: str, version: str, model: str, material: Any) -> str:
    """Return `namespace:version:model:sha256(canonical JSON of material)`."""
    canonical = json.dumps(material, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    digest = hashlib.sha256(canonical.encode()).hexdigest()
    return f"{namespace}:{version}:{model}:{digest}"
