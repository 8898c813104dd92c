"""The rollout's states, their one transition table, and the records the engine reads.

Spec is declared (the plan), status is observed (what the store recorded), phase is derived:
the rollout's phase is computed by ``rollout_phase`` from its status and its waves, never stored.

Wave:   planned -> approved -> applying -> baking -> passed | held | failed -> rolling_back -> rolled_back
Device: pending -> migrating -> migrated -> verified | failed -> reverting -> reverted;
        or held (its cohort is blocked by an open blocker), deferred (silent past the check-in
        deadline: judged with the next wave), excluded.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class WavePhase(StrEnum):
    PLANNED = "planned"
    APPROVED = "approved"
    APPLYING = "applying"
    BAKING = "baking"
    PASSED = "passed"
    HELD = "held"
    FAILED = "failed"
    ROLLING_BACK = "rolling_back"
    ROLLED_BACK = "rolled_back"

    @property
    def is_terminal(self) -> bool:
        return self in (WavePhase.PASSED, WavePhase.ROLLED_BACK)

    @property
    def is_started(self) -> bool:
        return self not in (WavePhase.PLANNED, WavePhase.APPROVED)


class DevicePhase(StrEnum):
    PENDING = "pending"
    MIGRATING = "migrating"
    MIGRATED = "migrated"
    VERIFIED = "verified"
    FAILED = "failed"
    REVERTING = "reverting"
    REVERTED = "reverted"
    HELD = "held"
    DEFERRED = "deferred"
    EXCLUDED = "excluded"

    @property
    def is_on_zero_trust(self) -> bool:
        """Whether the device's migration steps have (at least partly) been applied."""
        return self in (DevicePhase.MIGRATED, DevicePhase.VERIFIED, DevicePhase.FAILED, DevicePhase.DEFERRED,
                        DevicePhase.REVERTING, DevicePhase.MIGRATING)


class RolloutPhase(StrEnum):
    RUNNING = "running"
    PAUSED = "paused"
    HALTED = "halted"
    COMPLETED = "completed"


class Severity(StrEnum):
    BLOCKER = "blocker"
    MAJOR = "major"
    MINOR = "minor"


class IssueStatus(StrEnum):
    OPEN = "open"
    WORKAROUND = "workaround"
    RESOLVED = "resolved"
    ACCEPTED = "accepted"


W, D = WavePhase, DevicePhase
WAVE_TRANSITIONS: Mapping[WavePhase, frozenset[WavePhase]] = {
    W.PLANNED: frozenset({W.APPROVED}),
    W.APPROVED: frozenset({W.PLANNED, W.APPLYING}),  # back to planned when a new plan voids its approvals
    W.APPLYING: frozenset({W.BAKING, W.FAILED}),
    W.BAKING: frozenset({W.PASSED, W.HELD, W.FAILED}),
    W.HELD: frozenset({W.BAKING, W.FAILED}),  # a human resumes (judge again) or rolls back
    W.PASSED: frozenset({W.FAILED}),  # `rollout rollback WAVE` on a wave that had passed
    W.FAILED: frozenset({W.ROLLING_BACK}),
    W.ROLLING_BACK: frozenset({W.ROLLED_BACK}),
    W.ROLLED_BACK: frozenset(),
}
DEVICE_TRANSITIONS: Mapping[DevicePhase, frozenset[DevicePhase]] = {
    D.PENDING: frozenset({D.MIGRATING, D.HELD}),
    D.HELD: frozenset({D.PENDING}),
    D.MIGRATING: frozenset({D.MIGRATED, D.FAILED, D.REVERTING}),
    D.MIGRATED: frozenset({D.VERIFIED, D.FAILED, D.REVERTING, D.DEFERRED}),
    D.DEFERRED: frozenset({D.MIGRATED, D.VERIFIED, D.FAILED, D.REVERTING}),
    D.VERIFIED: frozenset({D.REVERTING}),
    D.FAILED: frozenset({D.REVERTING}),
    D.REVERTING: frozenset({D.REVERTED}),
    D.REVERTED: frozenset({D.PENDING}),  # released from quarantine when its issue is resolved
    D.EXCLUDED: frozenset(),
}


class IllegalTransition(ValueError):
    """A move the transition table does not allow: a bug in the caller, never user input."""


def check_wave_move(name: str, old: WavePhase, new: WavePhase) -> None:
    if new not in WAVE_TRANSITIONS[old]:
        raise IllegalTransition(f"wave {name}: {old} -> {new} is not allowed")


def check_device_move(device_id: str, old: DevicePhase, new: DevicePhase) -> None:
    if new not in DEVICE_TRANSITIONS[old]:
        raise IllegalTransition(f"device {device_id}: {old} -> {new} is not allowed")


# Migration steps, applied in this order; a rollback undoes them in reverse (access first).
MIGRATE_STEPS = ("identity", "endpoint", "access")
ROLLBACK_STEPS = tuple(reversed(MIGRATE_STEPS))


@dataclass(frozen=True, slots=True)
class Approval:
    wave: str
    wave_hash: str
    by: str
    role: str
    at: dt.datetime
    comment: str = ""


@dataclass(frozen=True, slots=True)
class Issue:
    id: int
    title: str
    selector: str
    severity: Severity | None  # None: not triaged yet
    status: IssueStatus
    reported_during: str | None  # the wave that was active when it was reported
    reported_by: str
    reported_at: dt.datetime
    decided_by: str | None = None
    decided_at: dt.datetime | None = None
    auto: bool = False  # raised by the engine (a cohort it rolled back)

    @property
    def holds_devices(self) -> bool:
        """An open blocker holds exactly the devices its selector matches."""
        return self.severity == Severity.BLOCKER and self.status == IssueStatus.OPEN


@dataclass(slots=True)
class WaveState:
    index: int
    name: str
    hash: str
    phase: WavePhase
    phase_since: dt.datetime
    approvals_required: tuple[str, ...]
    bake_seconds: int
    gates: Mapping[str, Any]
    canary: bool = False
    bake_started: dt.datetime | None = None
    consecutive_errors: int = 0
    last_verdict: str | None = None


@dataclass(slots=True)
class DeviceState:
    device_id: str
    wave: int
    phase: DevicePhase
    phase_since: dt.datetime
    migrated_at: dt.datetime | None = None
    steps_done: int = 0  # bit i set: MIGRATE_STEPS[i] is in place on the device
    error: str = ""
    ref: str = ""  # the backend's reference of the last call on the device (e.g. an SSM command id)


@dataclass(slots=True)
class RolloutStatus:
    """What was observed and requested; the phase is derived from it (``rollout_phase``)."""

    rollout_id: str
    plan_hash: str
    started_by: str
    started_at: dt.datetime
    separation_of_duties: bool = True
    paused: bool = False
    pause_reason: str = ""
    halted: bool = False
    halt_reason: str = ""
    extra: dict[str, Any] = field(default_factory=dict)
    # Who turned separation of duties off, as which role, why and when ({"by", "role", "reason", "at"});
    # None while it is enforced or was never on (``rollout separation-of-duties waive``).
    duties_waived: Mapping[str, str] | None = None


def rollout_phase(status: RolloutStatus, waves: list[WaveState]) -> RolloutPhase:
    """halted if the engine or an operator halted it; completed when every wave is terminal;
    paused if paused or a wave is held for a human; else running."""
    if status.halted:
        return RolloutPhase.HALTED
    if all(w.phase.is_terminal for w in waves):
        return RolloutPhase.COMPLETED
    if status.paused or any(w.phase == WavePhase.HELD for w in waves):
        return RolloutPhase.PAUSED
    return RolloutPhase.RUNNING


@dataclass(frozen=True, slots=True)
class StepResult:
    """One device's outcome of a backend call."""

    device_id: str
    ok: bool
    steps_done: int  # the device's step mask after the call
    at: dt.datetime
    error: str = ""
    retriable: bool = False  # throttling and the like: the device goes back to pending, not to failed
    ref: str = ""  # the backend's reference of the call (an SSM command id), kept on the device
