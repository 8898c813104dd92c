"""The rollout engine: a pure transition function.

``decide(snapshot, signals, now) -> Decision`` reads the rollout's recorded state, the telemetry
read this tick and the time it is given, and returns what should change (wave and device moves,
issues to raise, status changes, gate records) and what the backend should do (migrate or revert
batches). It never sleeps, reads the clock, calls AWS or touches the database: the driver
(``rollout.drive.driver``) observes, calls ``decide``, executes and commits.

The rules, in the order one tick applies them:

1. Holds: pending devices matched by an open blocker are held; held devices no longer matched go
   back to pending. Reverted devices of a quarantined cohort stay reverted until their issue is
   resolved, then return to pending and ride with the next wave that starts.
2. Rollbacks always proceed (also when paused or halted): reverting devices get revert calls; a
   rolling-back wave with no device left to revert is rolled back.
3. Halted: nothing else happens. Otherwise the active wave (the first that is not terminal):
   - planned -> approved once every required role approved its current hash (``rollout.core.approvals``);
   - approved -> planned if its approvals no longer hold (a new plan changed its hash);
   - approved -> applying when the previous wave passed, no issue reported during it is
     untriaged, and the rollout is not paused; devices deferred or released from earlier waves join it
     (not one that rule 1 holds in this same tick; one an open blocker matches joins but is not migrated);
   - applying: pending devices are migrated in batches; with none left pending -> baking;
   - baking: the gate (``rollout.core.gates.assess_wave``) decides: failing cohorts are reverted and
     quarantined under a new blocker issue; devices whose own migration or own check-in failed
     are reverted individually (none is left half-migrated in a wave that goes on);
     stragglers are deferred; PASS -> passed; FAIL -> failed, the rollout halts; INCONCLUSIVE or
     ``max_consecutive_errors`` ERRORs in a row -> held, for a human;
   - failed -> rolling_back: every device of the wave that is on zero trust is reverted.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Sequence
from typing import Any

from rollout.core.approvals import is_approved, valid_approvals
from rollout.core.decision import (
    Call,
    Decision,
    DeviceMove,
    NewIssue,
    Signals,
    Snapshot,
)
from rollout.core.device import Device
from rollout.core.gates import assess_wave
from rollout.core.gatespec import GateSpec
from rollout.core.model import (
    DevicePhase,
    DeviceState,
    Issue,
    Severity,
    WavePhase,
    WaveState,
)
from rollout.core.selectors import Selector
from rollout.core.verdicts import (
    GateDecision,
    Verdict,
    WaveEvidence,
)

D, W = DevicePhase, WavePhase


def decide(snap: Snapshot, signals: Signals, now: dt.datetime) -> Decision:
    """One tick of the rules in the module docstring."""
    d = Decision()
    holding = [i for i in snap.issues if i.holds_devices]
    selectors = [(i, Selector.parse(i.selector).predicate()) for i in holding]
    by_wave = _devices_by_wave(snap)
    _sync_holds(snap, selectors, d)
    _continue_rollbacks(snap, by_wave, d)
    if snap.status.halted:
        return d
    active = next((w for w in snap.waves if not w.phase.is_terminal), None)
    if active is None:
        return d
    handler = _HANDLERS.get(active.phase)
    if handler is not None:
        handler(snap, active, by_wave, signals, now, d)
    return d


def _devices_by_wave(snap: Snapshot) -> dict[int, list[DeviceState]]:
    out: dict[int, list[DeviceState]] = {}
    for device in snap.devices.values():
        out.setdefault(device.wave, []).append(device)
    for devices in out.values():
        devices.sort(key=lambda x: x.device_id)
    return out


def _sync_holds(snap: Snapshot, selectors: list[tuple[Issue, Callable[[Device], bool]]], d: Decision) -> None:
    for device in snap.devices.values():
        if device.phase not in (D.PENDING, D.HELD, D.REVERTED):
            continue
        attrs = snap.inventory[device.device_id]
        held_by = next((i for i, matches in selectors if matches(attrs)), None)
        if device.phase == D.PENDING and held_by is not None:
            d.move_device(device, D.HELD, error=f"held by issue #{held_by.id}: {held_by.title}")
        elif device.phase == D.HELD and held_by is None:
            d.move_device(device, D.PENDING, error="")
        elif device.phase == D.REVERTED and device.error.startswith("quarantined") and held_by is None:
            d.move_device(device, D.PENDING, error="released from quarantine", steps_done=0, migrated_at=None)


def _continue_rollbacks(snap: Snapshot, by_wave: dict[int, list[DeviceState]], d: Decision) -> None:
    for wave in snap.waves:
        reverting = tuple(x.device_id for x in by_wave.get(wave.index, []) if x.phase == D.REVERTING)
        for start in range(0, len(reverting), snap.batch_size):
            d.calls.append(Call("revert", wave.index, reverting[start:start + snap.batch_size]))
        if wave.phase == W.FAILED:
            _start_rollback(snap, wave, by_wave, d)
        elif wave.phase == W.ROLLING_BACK and not reverting:
            d.move_wave(wave, W.ROLLED_BACK, "every device of the wave is reverted")
            d.notices.append(f"wave {wave.name} is rolled back")


def _start_rollback(snap: Snapshot, wave: WaveState, by_wave: dict[int, list[DeviceState]], d: Decision) -> None:
    """failed -> rolling_back: revert every device of the wave that is (partly) on zero trust."""
    d.move_wave(wave, W.ROLLING_BACK, "rolling back every migrated device of the wave")
    batch = []
    for device in by_wave.get(wave.index, []):
        if device.phase in (D.MIGRATED, D.VERIFIED, D.FAILED, D.DEFERRED):
            d.move_device(device, D.REVERTING, error=f"wave {wave.name} rolled back")
            batch.append(device.device_id)
    for start in range(0, len(batch), snap.batch_size):
        d.calls.append(Call("revert", wave.index, tuple(batch[start:start + snap.batch_size])))


def _on_planned(snap: Snapshot, wave: WaveState, by_wave: dict[int, list[DeviceState]], signals: Signals,
                now: dt.datetime, d: Decision) -> None:
    if is_approved(wave, snap.approvals, snap.status):
        who = ", ".join(sorted(f"{a.by} ({a.role})" for a in valid_approvals(wave, snap.approvals, snap.status)))
        d.move_wave(wave, W.APPROVED, f"approved for hash {wave.hash[:12]} by {who}")


def _on_approved(snap: Snapshot, wave: WaveState, by_wave: dict[int, list[DeviceState]], signals: Signals,
                 now: dt.datetime, d: Decision) -> None:
    if not is_approved(wave, snap.approvals, snap.status):
        d.move_wave(wave, W.PLANNED, "its approvals no longer match the wave's hash")
        return
    blocker = _start_blocker(snap, wave)
    if blocker:
        return
    d.move_wave(wave, W.APPLYING, "started")
    _carry_into(snap, wave, d)
    _dispatch(snap, wave, by_wave, d)


def _start_blocker(snap: Snapshot, wave: WaveState) -> str:
    """Why ``wave`` may not start now ('' when it may)."""
    if snap.status.paused:
        return "the rollout is paused"
    previous = snap.waves[wave.index - 1] if wave.index > 0 else None
    if previous is not None and previous.phase not in (W.PASSED, W.ROLLED_BACK):
        return f"wave {previous.name} has not passed"
    if previous is not None and any(i.severity is None and i.reported_during == previous.name for i in snap.issues):
        return f"an issue reported during {previous.name} is not triaged"
    return ""


def _carry_into(snap: Snapshot, wave: WaveState, d: Decision) -> None:
    """Devices of earlier waves join the starting wave: deferred ones (judged again with it),
    ones released from a hold, and ones reverted with a rolled-back wave (the rollout was resumed)."""
    already = {m.device_id for m in d.device_moves}  # held by rule 1 this tick: stays where it is
    for device in snap.devices.values():
        if device.wave >= wave.index or device.device_id in already:
            continue
        if device.phase == D.REVERTED and device.error.startswith("wave "):
            d.move_device(device, D.PENDING, wave=wave.index, error="", steps_done=0, migrated_at=None)
        elif device.phase in (D.DEFERRED, D.PENDING):
            new = D.MIGRATED if device.phase == D.DEFERRED else D.PENDING
            if new == device.phase:
                d.device_moves.append(DeviceMove(device.device_id, device.phase, new, {"wave": wave.index}))
            else:
                d.move_device(device, new, wave=wave.index)


def _dispatch(snap: Snapshot, wave: WaveState, by_wave: dict[int, list[DeviceState]], d: Decision) -> None:
    """Migrate the wave's pending devices in batches, never one an open blocker matches (rule 1
    holds it next tick: e.g. a device of a rolled-back wave carried into this one)."""
    moved = {m.device_id for m in d.device_moves if m.new != D.PENDING}
    pending = [x.device_id for x in by_wave.get(wave.index, []) if x.phase == D.PENDING and x.device_id not in moved]
    pending += [m.device_id for m in d.device_moves if m.new == D.PENDING and m.fields.get("wave") == wave.index]
    blockers = [Selector.parse(i.selector) for i in snap.issues if i.holds_devices]
    if blockers:
        pending = [x for x in pending if not any(s.matches(snap.inventory[x]) for s in blockers)]
    limit = snap.batch_size * snap.batches_per_tick
    left = migration_errors_left(wave, by_wave.get(wave.index, []))
    for start in range(0, min(len(pending), limit), snap.batch_size):
        d.calls.append(Call("migrate", wave.index, tuple(pending[start:min(start + snap.batch_size, limit)]), left))


def migration_errors_left(wave: WaveState, devices: Sequence[DeviceState]) -> int:
    """How many more migrations of ``wave`` may fail before it exceeds its error budget.

    The budget is ``floor(max_migration_failures x devices)``: 10 % of 50 devices is 5, so the 6th
    failure fails the wave (``_on_applying``) and the backend stops dispatching at it.
    """
    failed = sum(1 for x in devices if x.phase == D.FAILED and x.migrated_at is None)
    return migration_error_budget(GateSpec.model_validate(wave.gates), len(devices)) - failed


def migration_error_budget(spec: GateSpec, devices: int) -> int:
    """``floor(max_migration_failures x devices)``, robust to float error (29 % of 100 is 29)."""
    return math.floor(round(spec.max_migration_failures * devices, 9))


def _on_applying(snap: Snapshot, wave: WaveState, by_wave: dict[int, list[DeviceState]], signals: Signals,
                 now: dt.datetime, d: Decision) -> None:
    devices = by_wave.get(wave.index, [])
    spec = GateSpec.model_validate(wave.gates)
    attempted = [x for x in devices if x.migrated_at is not None or x.phase == D.FAILED]
    failed = sum(1 for x in attempted if x.phase == D.FAILED and x.migrated_at is None)
    if attempted and failed > migration_error_budget(spec, len(devices)):
        d.move_wave(wave, W.FAILED, f"{failed} of {len(attempted)} migrations failed, more than the budget of "
                                    f"{spec.max_migration_failures:.0%} of the wave's {len(devices)} devices")
        d.status.update(halted=True, halt_reason=f"wave {wave.name} exceeded its migration error budget")
        d.notices.append(f"wave {wave.name}: migration error budget exceeded ({failed} failed); rolling back")
        return
    if any(x.phase in (D.PENDING, D.MIGRATING) for x in devices):
        _dispatch(snap, wave, by_wave, d)
        return
    d.move_wave(wave, W.BAKING, "every device of the wave was attempted", bake_started=now)
    d.wake(now + dt.timedelta(seconds=wave.bake_seconds))


def _on_baking(snap: Snapshot, wave: WaveState, by_wave: dict[int, list[DeviceState]], signals: Signals,
               now: dt.datetime, d: Decision) -> None:
    spec = GateSpec.model_validate(wave.gates)
    judged = [x for x in by_wave.get(wave.index, []) if x.migrated_at is not None
              and not x.error.startswith("quarantined")]
    evidence = WaveEvidence(
        devices={x.device_id: snap.inventory[x.device_id] for x in judged},
        migrated_at={x.device_id: x.migrated_at for x in judged if x.migrated_at is not None},
        reports=signals.reports, tickets=signals.tickets, alarms=signals.alarms, telemetry_errors=signals.errors,
    )
    started = wave.bake_started or wave.phase_since
    bake_end = started + dt.timedelta(seconds=wave.bake_seconds)
    decision = assess_wave(spec, evidence, now=now, bake_complete=now >= bake_end)
    if now < bake_end:
        d.wake(bake_end)
    _quarantine(snap, wave, judged, decision, d)
    _revert_failed_devices(by_wave.get(wave.index, []), signals, d)
    _defer_stragglers(snap, decision, d)
    _conclude(snap, wave, judged, decision, spec, now, d)


def _quarantine(snap: Snapshot, wave: WaveState, judged: list[DeviceState], decision: GateDecision,
                d: Decision) -> None:
    """Failing cohorts: revert their devices in this wave, hold them in later waves under a blocker."""
    open_selectors = {i.selector for i in snap.issues if i.holds_devices}
    for finding in decision.failing_cohorts:
        selector = Selector.parse(finding.selector)
        for device in judged:
            if device.phase in (D.MIGRATED, D.VERIFIED, D.FAILED, D.DEFERRED) and \
                    selector.matches(snap.inventory[device.device_id]):
                d.move_device(device, D.REVERTING, error=f"quarantined: {finding.selector} fails {finding.signal}")
        if finding.selector not in open_selectors:
            open_selectors.add(finding.selector)
            rate = 1 - finding.failures / finding.measured if finding.measured else 0.0
            d.new_issues.append(NewIssue(
                f"{finding.signal} failures concentrated in {finding.selector}: {rate:.0%} ok "
                f"({finding.failures}/{finding.measured} failed, p={finding.p_value:.1e})",
                finding.selector, Severity.BLOCKER, wave.name))
            d.notices.append(f"wave {wave.name}: cohort {finding.selector} rolled back and held "
                             f"({finding.signal}: {finding.failures}/{finding.measured} failed)")


def _revert_failed_devices(devices: list[DeviceState], signals: Signals, d: Decision) -> None:
    """Devices whose own migration failed (failed, never migrated: partly on zero trust) or whose own
    post-migration check-in failed are reverted individually; the rest of the wave is judged."""
    already = {m.device_id for m in d.device_moves}
    for device in devices:
        if device.device_id in already:
            continue
        if device.phase == D.FAILED:
            d.move_device(device, D.REVERTING)
            continue
        if device.migrated_at is None or device.error.startswith("quarantined"):
            continue
        report = signals.reports.get(device.device_id)
        failed_checks = [] if report is None or report.at < device.migrated_at else \
            sorted(name for name, ok in report.checks.items() if not ok)
        if device.phase in (D.MIGRATED, D.DEFERRED) and failed_checks:
            d.move_device(device, D.FAILED, error="failed checks: " + ", ".join(failed_checks))
            d.device_moves.append(DeviceMove(device.device_id, D.FAILED, D.REVERTING))


def _defer_stragglers(snap: Snapshot, decision: GateDecision, d: Decision) -> None:
    already = {m.device_id for m in d.device_moves}
    for device_id in decision.stragglers:
        device = snap.devices[device_id]
        if device_id not in already and device.phase == D.MIGRATED:
            d.move_device(device, D.DEFERRED, error="no check-in before the deadline: judged with the next wave")


def _conclude(snap: Snapshot, wave: WaveState, judged: list[DeviceState], decision: GateDecision, spec: GateSpec,
              now: dt.datetime, d: Decision) -> None:
    verdict = decision.verdict
    errors = wave.consecutive_errors + 1 if verdict == Verdict.ERROR else 0
    fields: dict[str, Any] = {}
    if errors != wave.consecutive_errors:
        fields["consecutive_errors"] = errors
    if verdict.value != wave.last_verdict or verdict in (Verdict.PASS, Verdict.FAIL):
        fields["last_verdict"] = verdict.value
        d.records.append((wave.index, _record(snap, wave, decision, now)))
    if fields:
        d.wave_fields[wave.index] = fields
    if verdict == Verdict.FAIL:
        d.move_wave(wave, W.FAILED, "gate failed: " + "; ".join(decision.reasons))
        d.status.update(halted=True, halt_reason=f"wave {wave.name} failed its gate and is rolled back automatically")
        d.notices.append(f"wave {wave.name} FAILED its gate: {'; '.join(decision.reasons)}; rolling back")
    elif verdict == Verdict.PASS:
        d.move_wave(wave, W.PASSED, "gate passed: " + "; ".join(decision.reasons))
        moved = {m.device_id for m in d.device_moves}
        for device in judged:
            if device.phase in (D.MIGRATED, D.DEFERRED) and device.device_id not in moved \
                    and device.device_id not in decision.unknown:
                d.move_device(device, D.VERIFIED)
    elif verdict == Verdict.INCONCLUSIVE or errors >= spec.max_consecutive_errors:
        why = "inconclusive" if verdict == Verdict.INCONCLUSIVE else f"{errors} telemetry errors in a row"
        d.move_wave(wave, W.HELD, f"held for a human: {why}: " + "; ".join(decision.reasons))
        d.notices.append(f"wave {wave.name} is held for triage ({why}); resume with `rollout resume`")


def _record(snap: Snapshot, wave: WaveState, decision: GateDecision, now: dt.datetime) -> dict[str, Any]:
    """The decision record: verdict, figures and thresholds, coverage, open issues, approvals, hash."""
    return {
        "wave": wave.name, "wave_hash": wave.hash, "at": now.isoformat(), "gate": decision.to_json(),
        "approvals": [{"by": a.by, "role": a.role, "at": a.at.isoformat(), "hash": a.wave_hash}
                      for a in valid_approvals(wave, snap.approvals, snap.status)],
        "open_issues": [{"id": i.id, "title": i.title, "severity": i.severity.value if i.severity else None,
                         "selector": i.selector} for i in snap.issues if i.status.value == "open"],
    }


_HANDLERS = {
    W.PLANNED: _on_planned,
    W.APPROVED: _on_approved,
    W.APPLYING: _on_applying,
    W.BAKING: _on_baking,
}  # held: waits for a human (`rollout resume` judges it again, `rollout rollback` fails it)
