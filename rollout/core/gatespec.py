"""The gate part of the rollout policy: health-signal thresholds and how a wave is judged.

These are values the pure engine and gates read (``rollout.core.gates``); the policy file that
holds them is loaded by ``rollout.plan.policy``. Durations are ``90m``, ``36h``, ``7d`` or ``2w``.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, field_validator

from rollout.core.signals import LOWER_IS_BETTER, SIGNALS

_DURATION = re.compile(r"^\s*(\d+)\s*([mhdw])\s*$")
_UNIT_SECONDS = {"m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
MAX_DURATION = 366 * 86400  # a bake or a deadline longer than a year is a typing mistake, and dates overflow


def parse_duration(value: Any) -> int:
    """``"7d"`` -> 604800. Integers are seconds; at most 366 days. Raises ValueError with the accepted forms."""
    if isinstance(value, bool):
        raise ValueError("must be a duration such as 90m, 36h, 7d or 2w")
    if isinstance(value, int):
        if value < 0:
            raise ValueError("must not be negative")
        seconds = value
    else:
        match = _DURATION.match(str(value)[:40])
        if not match:
            raise ValueError(f"{str(value)[:40]!r} is not a duration such as 90m, 36h, 7d or 2w")
        seconds = int(match.group(1)) * _UNIT_SECONDS[match.group(2)]
    if seconds > MAX_DURATION:
        raise ValueError(f"{str(value)[:40]!r} is longer than 366 days, the longest duration allowed; give a shorter one")
    return seconds


Duration = Annotated[int, BeforeValidator(parse_duration)]


class Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)



class Threshold(Frozen):
    """A health signal's thresholds. For rates (higher is better): pass at or above ``pass_``,
    roll back below ``rollback``. For ``tickets_per_100`` (lower is better): pass at or below
    ``pass_``, roll back above ``rollback``. Between the two the verdict is inconclusive."""

    pass_: float = Field(alias="pass")
    rollback: float




def _default_signals() -> dict[str, Threshold]:
    rates = {"kitting": (0.98, 0.90), "signin": (0.98, 0.90), "ztna": (0.98, 0.90), "app": (0.97, 0.85)}
    out = {name: Threshold(**{"pass": p, "rollback": r}) for name, (p, r) in rates.items()}
    out["tickets_per_100"] = Threshold(**{"pass": 5.0, "rollback": 15.0})
    return out


class CohortTest(Frozen):
    """When a cohort's failures count as concentrated: Fisher's exact test against the rest of the
    wave, one-sided, at ``alpha``, with at least ``min_failures`` failures in the cohort."""

    keys: tuple[str, ...] = ("model", "os_version", "department", "site", "apps")
    min_failures: int = Field(default=3, ge=1)
    alpha: float = Field(default=0.001, gt=0, lt=1)


class GateSpec(Frozen):
    """How a wave is judged during and after its bake."""

    signals: dict[str, Threshold] = Field(default_factory=_default_signals)
    min_checkins: int = Field(default=10, ge=1)
    coverage: float = Field(default=0.9, gt=0, le=1)
    checkin_deadline: Duration = 2 * 86400
    cohort: CohortTest = CohortTest()
    max_consecutive_errors: int = Field(default=3, ge=1)
    # While applying: a wave whose failed migrations exceed this share of its devices fails.
    max_migration_failures: float = Field(default=0.1, ge=0, le=1)

    @field_validator("signals")
    @classmethod
    def _known_signals(cls, v: dict[str, Threshold]) -> dict[str, Threshold]:
        for name, t in v.items():
            if name not in SIGNALS:
                raise ValueError(f"unknown signal {name!r} (known: {', '.join(SIGNALS)})")
            worse = t.rollback < t.pass_ if name in LOWER_IS_BETTER else t.rollback > t.pass_
            if worse:
                raise ValueError(f"{name}: the rollback threshold must be beyond the pass threshold")
        return v
