"""The health signals a gate judges, by name. Constants only, for every layer that names a signal.

Rates (higher is better): ``kitting``, ``signin``, ``ztna``, ``app``; ``tickets_per_100`` is lower
is better. Their thresholds are ``rollout.core.gatespec.Threshold``.
"""

from __future__ import annotations

SIGNALS = ("kitting", "signin", "ztna", "app", "tickets_per_100")
LOWER_IS_BETTER = frozenset({"tickets_per_100"})
RATE_SIGNALS = tuple(s for s in SIGNALS if s not in LOWER_IS_BETTER)
TICKETS = "tickets_per_100"
