"""Canonical JSON, the input of every hash: plans, waves, approvals and audit events.

Sorted keys, fixed separators, UTF-8 kept as is. ``sha256_of({"b": 1, "a": "é"})`` hashes the
text ``{"a":"é","b":1}``, so the same value gives the same hash on any machine.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and fixed separators, UTF-8 kept as is: the input of every hash."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def sha256_of(value: Any) -> str:
    return hashlib.sha256(canonical_json(value).encode("utf-8")).hexdigest()
