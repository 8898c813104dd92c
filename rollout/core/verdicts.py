"""What a gate concludes, and how it says so: verdicts in worst-of order, the evidence a wave is judged
on, the decision with its figures, and the sentences of its reasons.

``rollout.core.gates`` computes a ``GateDecision`` from a ``WaveEvidence``; the engine, the status
and the report read it. The sentences here are the only wording of a gate's reasons.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any

from rollout.core.device import Device
from rollout.core.signals import LOWER_IS_BETTER


class Verdict(StrEnum):
    """A gate's verdict, in worst-of order."""

    PASS = "pass"
    PENDING = "pending"
    INCONCLUSIVE = "inconclusive"
    ERROR = "error"
    FAIL = "fail"

    @property
    def rank(self) -> int:
        return _ORDER.index(self)

    @classmethod
    def worst(cls, *verdicts: Verdict) -> Verdict:
        """The worst of ``verdicts``; PASS when there are none."""
        return max(verdicts, key=lambda v: v.rank, default=cls.PASS)


_ORDER = tuple(Verdict)
worst = Verdict.worst


@dataclass(frozen=True, slots=True)
class HealthReport:
    device_id: str
    at: datetime
    checks: Mapping[str, bool]


@dataclass(frozen=True, slots=True)
class AlarmState:
    name: str
    state: str  # "OK" | "ALARM" | "INSUFFICIENT_DATA"


@dataclass(frozen=True, slots=True)
class WaveEvidence:
    devices: Mapping[str, Device]
    migrated_at: Mapping[str, datetime]
    reports: Mapping[str, HealthReport]
    tickets: Mapping[str, int]
    alarms: Sequence[AlarmState] = ()
    telemetry_errors: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class SignalResult:
    name: str
    value: float | None
    measured: int
    pass_threshold: float
    rollback_threshold: float
    verdict: Verdict


@dataclass(frozen=True, slots=True)
class CohortFinding:
    selector: str
    signal: str
    failures: int
    measured: int
    rest_failures: int
    rest_measured: int
    p_value: float


@dataclass(frozen=True, slots=True)
class GateDecision:
    verdict: Verdict
    signals: tuple[SignalResult, ...]
    reported: int
    expected: int
    coverage: float
    unknown: tuple[str, ...]
    stragglers: tuple[str, ...]
    failing_cohorts: tuple[CohortFinding, ...]
    reasons: tuple[str, ...]

    def to_json(self) -> dict[str, Any]:
        return {
            "verdict": self.verdict.value,
            "signals": [{"name": s.name, "value": s.value, "measured": s.measured, "pass": s.pass_threshold,
                         "rollback": s.rollback_threshold, "verdict": s.verdict.value} for s in self.signals],
            "reported": self.reported, "expected": self.expected, "coverage": self.coverage,
            "unknown": list(self.unknown), "stragglers": list(self.stragglers),
            "failing_cohorts": [{"selector": f.selector, "signal": f.signal, "failures": f.failures,
                                 "measured": f.measured, "rest_failures": f.rest_failures,
                                 "rest_measured": f.rest_measured, "p_value": f.p_value}
                                for f in self.failing_cohorts],
            "reasons": list(self.reasons),
        }


# --- the reasons' sentences --------------------------------------------------------------------

def signal_sentence(s: SignalResult, needed: int) -> str:
    lower = s.name in LOWER_IS_BETTER
    where = f"over {s.measured} devices" if lower else f"on {s.measured} check-ins"
    if s.value is None or s.verdict == Verdict.PENDING:
        return f"{s.name} measured on {s.measured} check-ins, fewer than the {needed} needed"
    value = f"{s.value:.1f}" if lower else f"{s.value:.3f}"
    if s.verdict == Verdict.FAIL:
        return f"{s.name} {value} {'>' if lower else '<'} rollback {s.rollback_threshold:g} {where}"
    if s.verdict == Verdict.PASS:
        return f"{s.name} {value} {'<=' if lower else '>='} pass {s.pass_threshold:g} {where}"
    return f"{s.name} {value} between pass {s.pass_threshold:g} and rollback {s.rollback_threshold:g} {where}"


def finding_sentence(f: CohortFinding) -> str:
    return (f"{f.signal} failures concentrated in {f.selector}: {1 - f.failures / f.measured:.3f} ok "
            f"({f.failures} of {f.measured} failed vs {f.rest_failures} of {f.rest_measured} in the rest of "
            f"the wave, p={f.p_value:.1e}); the wave is judged without it")
