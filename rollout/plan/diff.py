"""What changes between two plans, for reviewers and PR comments.

``diff_plans(old, new)`` is pure. A device *moved* when it is in a wave in both plans but not the
same wave (by name); *added* and *removed* devices are in only one plan. A wave whose content hash
changed loses its approvals: approvals are bound to the hash, so the change voids them.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any

from rollout.plan.planfile import PlanDoc


@dataclass(frozen=True, slots=True)
class WaveChange:
    name: str
    old_size: int | None  # None: the wave is new
    new_size: int | None  # None: the wave was removed
    old_hash: str | None
    new_hash: str | None

    @property
    def changed(self) -> bool:
        return self.old_hash != self.new_hash


@dataclass(frozen=True, slots=True)
class PlanDiff:
    old_hash: str
    new_hash: str
    moved: tuple[tuple[str, str, str], ...]  # (device, old wave, new wave), by device id
    added: tuple[tuple[str, str], ...]  # (device, wave)
    removed: tuple[tuple[str, str], ...]
    waves: tuple[WaveChange, ...]
    old_coverage: tuple[int, int, float]  # covered, total, fleet share
    new_coverage: tuple[int, int, float]
    old_completion: str
    new_completion: str

    @property
    def identical(self) -> bool:
        return self.old_hash == self.new_hash

    @property
    def voided(self) -> tuple[str, ...]:
        """Waves of the old plan whose approvals this change voids."""
        return tuple(w.name for w in self.waves if w.old_hash is not None and w.changed)

    @property
    def completion_shift_days(self) -> int:
        return (dt.date.fromisoformat(self.new_completion) - dt.date.fromisoformat(self.old_completion)).days


def diff_plans(old: PlanDoc, new: PlanDoc) -> PlanDiff:
    before, after = old.wave_of(), new.wave_of()
    moved = tuple((d, before[d], after[d]) for d in sorted(before.keys() & after.keys()) if before[d] != after[d])
    added = tuple((d, after[d]) for d in sorted(after.keys() - before.keys()))
    removed = tuple((d, before[d]) for d in sorted(before.keys() - after.keys()))
    old_waves = {w.name: w for w in old.waves}
    new_waves = {w.name: w for w in new.waves}
    names = [w.name for w in old.waves] + [w.name for w in new.waves if w.name not in old_waves]
    waves = tuple(
        WaveChange(
            name,
            old_waves[name].size if name in old_waves else None,
            new_waves[name].size if name in new_waves else None,
            old_waves[name].hash if name in old_waves else None,
            new_waves[name].hash if name in new_waves else None,
        )
        for name in names
    )
    return PlanDiff(
        old.plan_hash, new.plan_hash, moved, added, removed, waves,
        (old.coverage.cohorts_covered, old.coverage.cohorts_total, old.coverage.fleet_share_covered),
        (new.coverage.cohorts_covered, new.coverage.cohorts_total, new.coverage.fleet_share_covered),
        old.schedule.projected_completion, new.schedule.projected_completion,
    )


def diff_to_json(d: PlanDiff) -> dict[str, Any]:
    return {
        "schema": "zt-rollout/plan-diff/v1",
        "identical": d.identical,
        "plan_hash": {"old": d.old_hash, "new": d.new_hash},
        "moved": [{"device_id": dev, "from": a, "to": b} for dev, a, b in d.moved],
        "added": [{"device_id": dev, "wave": w} for dev, w in d.added],
        "removed": [{"device_id": dev, "wave": w} for dev, w in d.removed],
        "waves": [
            {"name": w.name, "old_size": w.old_size, "new_size": w.new_size, "old_hash": w.old_hash,
             "new_hash": w.new_hash, "changed": w.changed}
            for w in d.waves
        ],
        "approvals_voided": list(d.voided),
        "coverage": {
            "old": {"cohorts_covered": d.old_coverage[0], "cohorts_total": d.old_coverage[1],
                    "fleet_share_covered": d.old_coverage[2]},
            "new": {"cohorts_covered": d.new_coverage[0], "cohorts_total": d.new_coverage[1],
                    "fleet_share_covered": d.new_coverage[2]},
        },
        "projected_completion": {"old": d.old_completion, "new": d.new_completion,
                                 "shift_days": d.completion_shift_days},
    }
