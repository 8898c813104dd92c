"""What people do to a running rollout: start it, approve waves, triage issues, pause, resume,
roll back. Each is one audited transaction; none needs the driver's lease (the driver sees the
change on its next tick). ``rollout rollback`` records the intent; the engine performs it.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from typing import Any

from rollout.core.device import Device
from rollout.core.model import (
    Approval,
    DevicePhase,
    DeviceState,
    IssueStatus,
    RolloutStatus,
    Severity,
    WavePhase,
    WaveState,
    check_wave_move,
)
from rollout.core.names import display_name, same_person
from rollout.core.selectors import Selector, SelectorSyntaxError
from rollout.drive.recorder import issue_changes
from rollout.errors import InputError, NotFoundError
from rollout.store.api import Changes, RowChange, StateStore, TxView


def start_rollout(store: StateStore, rollout_id: str, plan: Mapping[str, Any], inventory: Mapping[str, Device],
                  started_by: str, separation_of_duties: bool, now: dt.datetime,
                  backend: Mapping[str, Any] | None = None) -> None:
    """Record a new rollout from a plan file's JSON and the inventory it was made from, and (in the
    same transaction) the backend that drives it."""
    started_by = display_name(started_by, what="--as")
    waves = [WaveState(w["index"], w["name"], w["hash"], WavePhase.PLANNED, now, tuple(w["approvals"]),
                       w["bake_seconds"], w.get("gates") or {}, w["canary"]) for w in plan["waves"]]
    devices: list[DeviceState] = []
    for w in plan["waves"]:
        devices += [DeviceState(d, w["index"], DevicePhase.PENDING, now) for d in w["devices"]]
    missing = [d.device_id for d in devices if d.device_id not in inventory]
    if missing:
        raise InputError(f"the plan names {len(missing)} devices that are not in the inventory (first: {missing[0]}); "
                         "start with the inventory the plan was made from.")
    status = RolloutStatus(rollout_id, plan["plan_hash"], started_by, now, separation_of_duties)
    store.create_rollout(status, waves, devices, [inventory[d.device_id] for d in devices], dict(plan), now,
                         backend=dict(backend) if backend is not None else None)


def _wave(store: StateStore, rollout_id: str, name: str) -> WaveState:
    waves = store.waves(rollout_id)
    for wave in waves:
        if wave.name == name:
            return wave
    raise NotFoundError(f"rollout {rollout_id} has no wave {name!r} (waves: {', '.join(w.name for w in waves)}).")


def approve(store: StateStore, rollout_id: str, wave_name: str, by: str, role: str, comment: str,
            now: dt.datetime) -> WaveState:
    """Record an approval of the wave's *current* hash; refuse what could never count."""
    by = display_name(by, what="--as")
    status = store.status(rollout_id)
    wave = _wave(store, rollout_id, wave_name)
    if role not in wave.approvals_required:
        raise InputError(f"wave {wave.name} needs approvals from {', '.join(wave.approvals_required) or 'nobody'}, "
                         f"not {role!r}; pass --role with one of those.")
    if status.separation_of_duties and same_person(by, status.started_by):
        raise InputError(f"{by} started rollout {rollout_id} and cannot approve its waves (separation of duties); "
                         "ask another person with the role.")
    if wave.phase.is_started:
        raise InputError(f"wave {wave.name} is already {wave.phase}; approvals only matter before a wave starts.")
    ch = Changes(approvals=[Approval(wave.name, wave.hash, by, role, now, comment)])
    ch.event(now, by, "approval.added", {"wave": wave.name, "wave_hash": wave.hash, "role": role, "comment": comment})
    store.transact(rollout_id, lambda view: ch)
    return wave


def _check_selector(store: StateStore, rollout_id: str, selector: str) -> str:
    keys = store.inventory_keys(rollout_id) | {"app", "tag"}
    try:
        return str(Selector.parse(selector, known_keys=keys))
    except SelectorSyntaxError as err:
        raise InputError(f"--selector: {err}") from None


def add_issue(store: StateStore, rollout_id: str, title: str, selector: str, severity: str | None, by: str,
              now: dt.datetime) -> int:
    """Report an issue; it is untriaged until it has a severity. Returns its id."""
    by = display_name(by, what="--as")
    selector = _check_selector(store, rollout_id, selector)
    active = next((w.name for w in store.waves(rollout_id) if w.phase.is_started and not w.phase.is_terminal), None)
    if active is None:
        started = [w.name for w in store.waves(rollout_id) if w.phase.is_started]
        active = started[-1] if started else None

    def build(view: TxView) -> Changes:
        ch = Changes()
        issue_changes(ch, view.next_issue_id(), title, selector, Severity(severity).value if severity else None,
                      active, by, now)
        return ch

    return store.transact(rollout_id, build).new_issues[0].id


def set_issue(store: StateStore, rollout_id: str, issue_id: int, by: str, now: dt.datetime,
              severity: str | None = None, status: str | None = None) -> None:
    """Triage: set severity and/or status, recording who decided and when."""
    by = display_name(by, what="--as")
    if severity is None and status is None:
        raise InputError("give --severity and/or --status.")
    if not any(i.id == issue_id for i in store.issues(rollout_id)):
        raise NotFoundError(f"rollout {rollout_id} has no issue #{issue_id}; see `rollout triage list`.")
    changes = {"severity": Severity(severity).value if severity else None,
               "status": IssueStatus(status).value if status else None}
    fields: dict[str, Any] = {k: v for k, v in changes.items() if v is not None}
    ch = Changes(issues=[RowChange(issue_id, {**fields, "decided_by": by, "decided_at": now})])
    ch.event(now, by, "issue.triaged", {"id": issue_id, **{k: v for k, v in changes.items() if v}})
    store.transact(rollout_id, lambda view: ch)


def pause(store: StateStore, rollout_id: str, by: str, reason: str, now: dt.datetime) -> None:
    by = display_name(by, what="--as")
    def build(view: TxView) -> Changes:
        view.status()
        ch = Changes(rollout={"paused": True, "pause_reason": reason})
        ch.event(now, by, "rollout.paused", {"reason": reason})
        return ch

    store.transact(rollout_id, build)


def resume(store: StateStore, rollout_id: str, by: str, now: dt.datetime) -> list[str]:
    """Clear a pause or a halt and send held waves back to baking, to be judged again.

    After a halt, the next wave may start although the wave before it was rolled back; that
    wave's reverted devices ride with it. Returns the held waves that go back to baking.
    """
    by = display_name(by, what="--as")
    waves = [w for w in store.waves(rollout_id) if w.phase == WavePhase.HELD]
    ch = Changes(rollout={"paused": False, "pause_reason": "", "halted": False, "halt_reason": ""})
    for wave in waves:
        check_wave_move(wave.name, wave.phase, WavePhase.BAKING)
        ch.waves.append(RowChange(wave.index, {"phase": WavePhase.BAKING, "phase_since": now, "consecutive_errors": 0},
                                  {"phase": WavePhase.HELD}))
    ch.event(now, by, "rollout.resumed", {"waves": [w.name for w in waves]})
    store.transact(rollout_id, lambda view: ch)
    return [w.name for w in waves]


ROLLBACK_FROM = (WavePhase.APPLYING, WavePhase.BAKING, WavePhase.HELD, WavePhase.PASSED)


def request_rollback(store: StateStore, rollout_id: str, wave_name: str, by: str, reason: str,
                     now: dt.datetime) -> WaveState:
    """Mark the wave failed and halt the rollout; the engine reverts its devices on its next tick."""
    by = display_name(by, what="--as")
    wave = _wave(store, rollout_id, wave_name)
    if wave.phase in (WavePhase.FAILED, WavePhase.ROLLING_BACK, WavePhase.ROLLED_BACK):
        raise InputError(f"wave {wave.name} is already {wave.phase}: its rollback was recorded before, and nothing "
                         "new was recorded now; `rollout status` shows how far it is.")
    if wave.phase not in ROLLBACK_FROM:
        raise InputError(f"wave {wave.name} is {wave.phase}: nothing of it is migrated, so there is nothing to roll back.")
    ch = Changes(rollout={"halted": True, "halt_reason": f"wave {wave.name} rolled back on demand by {by}: {reason}"},
                 waves=[RowChange(wave.index, {"phase": WavePhase.FAILED, "phase_since": now}, {"phase": wave.phase})])
    ch.event(now, by, "wave.rollback_requested", {"wave": wave.name, "from": wave.phase.value, "reason": reason})
    store.transact(rollout_id, lambda view: ch)
    return wave


def replan(store: StateStore, rollout_id: str, plan: Mapping[str, Any], by: str, now: dt.datetime) -> list[str]:
    """Adopt a new plan for the waves that have not started; returns the waves whose approvals it voids.

    Waves must keep their names and order. A wave whose content hash changes takes the new
    devices, bake, gates and required roles, and its approvals (bound to the old hash) stop
    counting: an approved wave goes back to planned. Started waves cannot change: a plan that
    moves a device of a started wave, or changes a started wave, is refused whole.
    """
    by = display_name(by, what="--as")
    waves = store.waves(rollout_id)
    new_waves = list(plan["waves"])
    if [w.name for w in waves] != [w["name"] for w in new_waves]:
        raise InputError("the new plan's waves differ in names or order from the running rollout's; "
                         "a new wave layout needs a new rollout.")
    devices = store.devices(rollout_id)
    target = {d: w["index"] for w in new_waves for d in w["devices"]}
    problems = [f"wave {w.name} is {w.phase} and cannot change" for w, n in zip(waves, new_waves)
                if w.phase.is_started and w.hash != n["hash"]]
    problems += [f"device {d}: not in the running rollout" for d in target if d not in devices]
    problems += [f"device {d.device_id}: in started wave {waves[d.wave].name}, the new plan moves it"
                 for d in devices.values() if waves[d.wave].phase.is_started and target.get(d.device_id, d.wave) != d.wave
                 and d.phase not in (DevicePhase.PENDING, DevicePhase.HELD)]
    if problems:
        raise InputError("cannot adopt the new plan:\n  " + "\n  ".join(problems[:20]))
    changed = [(w, n) for w, n in zip(waves, new_waves) if w.hash != n["hash"]]
    ch = Changes(rollout={"plan_hash": plan["plan_hash"], "plan_json": dict(plan)})
    for wave, new in changed:
        phase = WavePhase.PLANNED if wave.phase == WavePhase.APPROVED else wave.phase
        ch.waves.append(RowChange(wave.index, {"hash": new["hash"], "phase": phase,
                                               "approvals_required": list(new["approvals"]),
                                               "bake_seconds": new["bake_seconds"], "gates": new.get("gates") or {}},
                                  {"phase": wave.phase}))
    for device_id, wave_index in target.items():
        if devices[device_id].wave != wave_index:
            ch.devices.append(RowChange(device_id, {"wave": wave_index}, {"wave": devices[device_id].wave}))
    ch.event(now, by, "rollout.replanned", {"plan_hash": plan["plan_hash"], "voided": [w.name for w, _ in changed]})
    store.transact(rollout_id, lambda view: ch)
    return [w.name for w, _ in changed]


WAIVER_ROLE = "security"


def waive_separation_of_duties(store: StateStore, rollout_id: str, by: str, role: str, reason: str,
                               now: dt.datetime) -> RolloutStatus:
    """Let the starter approve waves too: a decision of the ``security`` role, never of the starter, with
    a reason; recorded in the rollout (status and report show it) and in the audit log."""
    by = display_name(by, what="--as")
    reason = " ".join(reason.split())
    status = store.status(rollout_id)
    if role != WAIVER_ROLE:
        raise InputError(f"only the {WAIVER_ROLE} role may waive separation of duties, not {role!r}; "
                         f"ask a person with that role (--role {WAIVER_ROLE}).")
    if not reason:
        raise InputError("--reason: empty; say why the starter may approve waves of this rollout.")
    if same_person(by, status.started_by):
        raise InputError(f"{by} started rollout {rollout_id} and cannot waive the rule that binds them; "
                         f"ask another person with the {WAIVER_ROLE} role.")
    if not status.separation_of_duties:
        raise InputError(f"separation of duties is already off for rollout {rollout_id}"
                         + (f" (waived by {status.duties_waived['by']})" if status.duties_waived else "")
                         + "; nothing new was recorded.")
    waiver = {"by": by, "role": role, "reason": reason, "at": now.isoformat()}
    ch = Changes(rollout={"separation_of_duties": False, "duties_waived": waiver})
    ch.event(now, by, "rollout.separation_of_duties_waived", {"role": role, "reason": reason,
                                                              "starter": status.started_by})
    store.transact(rollout_id, lambda view: ch)
    return store.status(rollout_id)
