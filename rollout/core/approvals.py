"""Approval rules: bound to the wave's content hash, one person per role, separation of duties.

A wave is approved when, for each role it requires, a different person approved it with that
role *for the wave's current hash*. An approval for another hash (an earlier plan) counts for
nothing: a changed plan voids the approvals of the waves it changes, and only those. With
separation of duties, the person who started the rollout cannot approve its waves. Names are
compared by ``rollout.core.names.person_key``: ``Sato``, ``sato`` and ``ｓａｔｏ`` are one person,
and so are look-alikes such as ``sаto`` with a Cyrillic ``а``.

Example: canary requires (pm, security); approvals: sato as pm and suzuki as security on hash H:
approved. If sato approved as both pm and security, it is not: one person fills one role.
"""

from __future__ import annotations

from collections.abc import Iterable

from rollout.core.model import Approval, RolloutStatus, WaveState
from rollout.core.names import person_key


def valid_approvals(wave: WaveState, approvals: Iterable[Approval], status: RolloutStatus) -> list[Approval]:
    """The approvals that count for ``wave`` now: its name, its current hash, not by the starter."""
    starter = person_key(status.started_by)
    return [
        a for a in approvals
        if a.wave == wave.name and a.wave_hash == wave.hash
        and not (status.separation_of_duties and person_key(a.by) == starter)
    ]


def missing_roles(wave: WaveState, approvals: Iterable[Approval], status: RolloutStatus) -> tuple[str, ...]:
    """Roles still missing for ``wave`` (empty when it is approved), by the rule of the module docstring.

    Roles are matched to distinct people with augmenting paths (a maximum bipartite matching), so
    the answer is exact for any number of roles.
    """
    required = wave.approvals_required
    by_role: dict[str, list[str]] = {}
    for a in valid_approvals(wave, approvals, status):
        people = by_role.setdefault(a.role, [])
        if person_key(a.by) not in people:
            people.append(person_key(a.by))
    holder: dict[str, int] = {}  # person -> index of the required role they fill

    def assign(slot: int, seen: set[str]) -> bool:
        for person in sorted(by_role.get(required[slot], [])):
            if person in seen:
                continue
            seen.add(person)
            if person not in holder or assign(holder[person], seen):
                holder[person] = slot
                return True
        return False

    for slot in range(len(required)):
        assign(slot, set())
    filled = set(holder.values())
    return tuple(role for slot, role in enumerate(required) if slot not in filled)


def is_approved(wave: WaveState, approvals: Iterable[Approval], status: RolloutStatus) -> bool:
    return not missing_roles(wave, list(approvals), status)
