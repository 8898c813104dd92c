"""Builders for the engine tests: snapshots of a small fleet, records, reports, a pinned clock,
and ``advance`` - a pure stand-in for the driver that applies a Decision to a Snapshot (the
backend calls succeed) so a rule that spans ticks can be followed without a database."""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Collection, Iterable, Mapping, Sequence
from functools import lru_cache
from typing import Any

from rollout.core.decision import Decision, Signals, Snapshot
from rollout.core.device import Device
from rollout.core.model import (
    MIGRATE_STEPS,
    Approval,
    DevicePhase,
    DeviceState,
    Issue,
    IssueStatus,
    RolloutStatus,
    Severity,
    WavePhase,
    WaveState,
)
from rollout.core.signals import RATE_SIGNALS
from rollout.core.verdicts import AlarmState, HealthReport
from rollout.plan.fleet import generate_fleet

NOW = dt.datetime(2025, 4, 1, 9, 0, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)
STARTER = "starter"
FULL_STEPS = (1 << len(MIGRATE_STEPS)) - 1
FAST_GATES: dict[str, Any] = {"min_checkins": 5, "cohort": {"keys": ["model"], "min_failures": 3, "alpha": 0.001}}
D, W = DevicePhase, WavePhase


@lru_cache(maxsize=8)
def fleet(n: int = 60, seed: int = 3) -> tuple[Device, ...]:
    return tuple(generate_fleet(n, seed))


def wave_name(index: int) -> str:
    return "canary" if index == 0 else f"wave-{index}"


def make_wave(index: int, phase: WavePhase = W.PLANNED, *, hash: str | None = None,
              approvals: Sequence[str] = ("pm",), bake_seconds: int = 3600, gates: Mapping[str, Any] | None = None,
              bake_started: dt.datetime | None = None, **fields: Any) -> WaveState:
    return WaveState(index, wave_name(index), hash or f"hash-{index}", phase, NOW - 3 * HOUR, tuple(approvals),
                     bake_seconds, dict(FAST_GATES if gates is None else gates), canary=index == 0,
                     bake_started=bake_started, **fields)


def make_device_state(device_id: str, wave: int, phase: DevicePhase = D.PENDING, *,
                      migrated_at: dt.datetime | None = None, steps_done: int | None = None,
                      error: str = "") -> DeviceState:
    if steps_done is None:
        steps_done = FULL_STEPS if phase.is_on_zero_trust and phase != D.MIGRATING else 0
    return DeviceState(device_id, wave, phase, NOW - 3 * HOUR, migrated_at, steps_done, error)


def make_approval(wave: int | str, by: str, role: str = "pm", *, hash: str | None = None) -> Approval:
    name = wave if isinstance(wave, str) else wave_name(wave)
    index = wave if isinstance(wave, int) else (0 if wave == "canary" else int(wave.split("-")[1]))
    return Approval(name, hash or f"hash-{index}", by, role, NOW - 4 * HOUR)


def make_issue(id: int, selector: str, severity: Severity | None = Severity.BLOCKER,
               status: IssueStatus = IssueStatus.OPEN, *, during: str | None = "canary", auto: bool = False) -> Issue:
    return Issue(id, f"issue {id}", selector, severity, status, during, "reporter", NOW - 2 * HOUR,
                 auto=auto)


def make_status(**fields: Any) -> RolloutStatus:
    return RolloutStatus("zt-test", "plan-hash", STARTER, NOW - 10 * HOUR, **fields)


def make_snapshot(
    phases: Sequence[WavePhase] = (W.PLANNED, W.PLANNED, W.PLANNED),
    *,
    n: int = 60,
    seed: int = 3,
    sizes: Sequence[int] | None = None,
    approvals: Iterable[Approval] = (),
    issues: Iterable[Issue] = (),
    status: RolloutStatus | None = None,
    gates: Mapping[str, Any] | None = None,
    wave_approvals: Mapping[int, Sequence[str]] | None = None,
    bake_started: dt.datetime = NOW - 2 * HOUR,
    migrated_at: dt.datetime = NOW - 2 * HOUR,
) -> Snapshot:
    """A rollout of ``n`` generated devices split into len(phases) waves (evenly, or by ``sizes``).

    Devices take the phase their wave implies: pending for planned/approved waves, migrated
    (at ``migrated_at``) for applying/baking/held waves, verified for passed ones, reverted for
    rolled-back ones; failed/rolling_back waves have migrated devices."""
    devices = fleet(n, seed)
    sizes = list(sizes) if sizes is not None else _even(n, len(phases))
    waves, states, start = [], {}, 0
    for index, phase in enumerate(phases):
        baking = phase in (W.BAKING, W.HELD)
        waves.append(make_wave(index, phase, gates=gates, approvals=(wave_approvals or {}).get(index, ("pm",)),
                               bake_started=bake_started if baking else None))
        device_phase, when = _device_phase_for(phase), None
        if device_phase in (D.MIGRATED, D.VERIFIED):
            when = migrated_at
        for device in devices[start:start + sizes[index]]:
            states[device.device_id] = make_device_state(device.device_id, index, device_phase, migrated_at=when,
                                                         error="wave rolled back" if phase == W.ROLLED_BACK else "")
        start += sizes[index]
    return Snapshot(status or make_status(), waves, states, {d.device_id: d for d in devices}, tuple(approvals),
                    tuple(issues))


def _even(n: int, k: int) -> list[int]:
    return [n // k + (1 if i < n % k else 0) for i in range(k)]


def _device_phase_for(phase: WavePhase) -> DevicePhase:
    if phase in (W.PLANNED, W.APPROVED):
        return D.PENDING
    if phase == W.PASSED:
        return D.VERIFIED
    if phase == W.ROLLED_BACK:
        return D.REVERTED
    return D.MIGRATED


def wave_devices(snap: Snapshot, index: int) -> list[str]:
    return sorted(d.device_id for d in snap.devices.values() if d.wave == index)


def matching(snap: Snapshot, selector_value: tuple[str, str], wave: int | None = None) -> list[str]:
    key, value = selector_value
    return sorted(d.device_id for d in snap.devices.values()
                  if (wave is None or d.wave == wave) and value in snap.inventory[d.device_id].values_of(key))


def with_devices(snap: Snapshot, ids: Iterable[str], **changes: Any) -> Snapshot:
    devices = dict(snap.devices)
    for device_id in ids:
        devices[device_id] = dataclasses.replace(devices[device_id], **changes)
    return dataclasses.replace(snap, devices=devices)


def with_wave(snap: Snapshot, index: int, **changes: Any) -> Snapshot:
    waves = list(snap.waves)
    waves[index] = dataclasses.replace(waves[index], **changes)
    return dataclasses.replace(snap, waves=waves)


def make_report(device_id: str, at: dt.datetime, failed: Collection[str] = ()) -> HealthReport:
    return HealthReport(device_id, at, {s: s not in failed for s in RATE_SIGNALS})


def reports_for(snap: Snapshot, wave: int, *, fail: Mapping[str, Collection[str]] | None = None,
                silent: Collection[str] = (), at: dt.datetime = NOW - HOUR) -> dict[str, HealthReport]:
    """A check-in at ``at`` from every device of ``wave`` not ``silent``; ``fail[signal]`` lists failing ids."""
    fail = fail or {}
    return {d: make_report(d, at, [s for s, ids in fail.items() if d in ids])
            for d in wave_devices(snap, wave) if d not in silent}


def signals(reports: Mapping[str, HealthReport] | None = None, *, alarms: Iterable[tuple[str, str]] = (),
            errors: Iterable[str] = ()) -> Signals:
    return Signals(dict(reports or {}), {}, tuple(AlarmState(n, s) for n, s in alarms), tuple(errors))


def advance(snap: Snapshot, decision: Decision, now: dt.datetime = NOW) -> Snapshot:
    """The next tick's snapshot: ``decision`` committed and its backend calls done (all succeed)."""
    waves = list(snap.waves)
    for move in decision.wave_moves:
        assert waves[move.index].phase == move.old, move
        waves[move.index] = dataclasses.replace(waves[move.index], phase=move.new, phase_since=now, **move.fields)
    for index, fields in decision.wave_fields.items():
        waves[index] = dataclasses.replace(waves[index], **fields)
    devices = dict(snap.devices)
    for dmove in decision.device_moves:
        device = devices[dmove.device_id]
        assert device.phase == dmove.old, dmove
        devices[dmove.device_id] = dataclasses.replace(device, phase=dmove.new, phase_since=now, **dmove.fields)
    for call in decision.calls:
        for device_id in call.device_ids:
            device = devices[device_id]
            if call.verb == "migrate":
                assert device.phase == D.PENDING, device
                devices[device_id] = dataclasses.replace(device, phase=D.MIGRATED, steps_done=FULL_STEPS,
                                                         migrated_at=now)
            else:
                assert device.phase == D.REVERTING, device
                devices[device_id] = dataclasses.replace(device, phase=D.REVERTED, steps_done=0)
    issues = list(snap.issues)
    for new in decision.new_issues:
        issues.append(Issue(len(issues) + 1, new.title, new.selector, new.severity, IssueStatus.OPEN,
                            new.reported_during, "engine", now, auto=True))
    status = dataclasses.replace(snap.status, **decision.status) if decision.status else snap.status
    return dataclasses.replace(snap, status=status, waves=waves, devices=devices, issues=tuple(issues))


def phases_of(snap: Snapshot, ids: Iterable[str]) -> set[DevicePhase]:
    return {snap.devices[i].phase for i in ids}


def moved(decision: Decision) -> dict[str, tuple[DevicePhase, DevicePhase]]:
    """device id -> (first old, last new) over the decision's device moves."""
    out: dict[str, tuple[DevicePhase, DevicePhase]] = {}
    for m in decision.device_moves:
        out[m.device_id] = (out[m.device_id][0] if m.device_id in out else m.old, m.new)
    return out


def wave_moves(decision: Decision) -> list[tuple[int, WavePhase, WavePhase]]:
    return [(m.index, m.old, m.new) for m in decision.wave_moves]


def called(decision: Decision, verb: str) -> set[str]:
    return {d for c in decision.calls if c.verb == verb for d in c.device_ids}


def with_issues(snap: Snapshot, *issues: Issue) -> Snapshot:
    return dataclasses.replace(snap, issues=tuple(issues))


def resolved(issue: Issue) -> Issue:
    return dataclasses.replace(issue, status=IssueStatus.RESOLVED, decided_by="sato", decided_at=NOW)
