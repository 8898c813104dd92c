"""Approval rules: bound to the wave's content hash, one person per role, separation of duties.

A wave is approved when, for each role it requires, a different person approved it with that
role *for the wave's current hash*. An approval for another hash (an earlier plan) counts for
nothing: a changed plan voids the approvals of the waves it changes, and only those. With
separation of duties, the person who started the rollout cannot approve its waves.

Example: canary requires (pm, security); approvals: sato as pm and suzuki as security on hash H:
approved. If sato approved as both pm and security, it is not: one person fills one role.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence

from rollout.model import Approval, RolloutStatus, WaveState


def valid_approvals(wave: WaveState, approvals: Iterable[Approval], status: RolloutStatus) -> list[Approval]:
    """The approvals that count for ``wave`` now: its name, its current hash, not by the starter."""
    return [
        a for a in approvals
        if a.wave == wave.name and a.wave_hash == wave.hash
        and not (status.separation_of_duties and a.by == status.started_by)
    ]


def missing_roles(wave: WaveState, approvals: Iterable[Approval], status: RolloutStatus) -> tuple[str, ...]:
    """Roles still missing for ``wave`` (empty when it is approved), by the rule of the module docstring."""
    required = wave.approvals_required
    if not required:
        return ()
    by_role: dict[str, set[str]] = {}
    for a in valid_approvals(wave, approvals, status):
        by_role.setdefault(a.role, set()).add(a.by)
    best: tuple[str, ...] = required
    for order in itertools.permutations(required):
        missing = _assign(order, by_role)
        if len(missing) < len(best):
            best = missing
        if not best:
            break
    return tuple(r for r in required if r in best)


def _assign(roles: Sequence[str], by_role: dict[str, set[str]]) -> tuple[str, ...]:
    used: set[str] = set()
    missing = []
    for role in roles:
        free = sorted(by_role.get(role, set()) - used)
        if free:
            used.add(free[0])
        else:
            missing.append(role)
    return tuple(missing)


def is_approved(wave: WaveState, approvals: Iterable[Approval], status: RolloutStatus) -> bool:
    return not missing_roles(wave, list(approvals), status)
