"""What people do to a running rollout: start it, approve waves, triage issues, pause, resume,
roll back. Each is one audited transaction; none needs the driver's lease (the driver sees the
change on its next tick). ``rollout rollback`` records the intent; the engine performs it.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping, Sequence
from typing import Any

from rollout.errors import InputError, NotFoundError
from rollout.inventory import Device
from rollout.model import (
    DevicePhase,
    DeviceState,
    IssueStatus,
    RolloutStatus,
    Severity,
    WavePhase,
    WaveState,
    check_wave_move,
)
from rollout.recorder import insert_issue
from rollout.selectors import Selector, SelectorSyntaxError
from rollout.store import SqliteStore, iso


def start_rollout(store: SqliteStore, rollout_id: str, plan: Mapping[str, Any], inventory: Mapping[str, Device],
                  started_by: str, separation_of_duties: bool, now: dt.datetime) -> None:
    """Record a new rollout from a plan file's JSON and the inventory it was made from."""
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
    store.create_rollout(status, waves, devices, [inventory[d.device_id] for d in devices], dict(plan), now)


def _wave(store: SqliteStore, rollout_id: str, name: str) -> WaveState:
    waves = store.waves(rollout_id)
    for wave in waves:
        if wave.name == name:
            return wave
    raise NotFoundError(f"rollout {rollout_id} has no wave {name!r} (waves: {', '.join(w.name for w in waves)}).")


def approve(store: SqliteStore, rollout_id: str, wave_name: str, by: str, role: str, comment: str,
            now: dt.datetime) -> WaveState:
    """Record an approval of the wave's *current* hash; refuse what could never count."""
    status = store.status(rollout_id)
    wave = _wave(store, rollout_id, wave_name)
    if role not in wave.approvals_required:
        raise InputError(f"wave {wave.name} needs approvals from {', '.join(wave.approvals_required) or 'nobody'}, "
                         f"not {role!r}; pass --role with one of those.")
    if status.separation_of_duties and by.casefold() == status.started_by.casefold():
        raise InputError(f"{by} started rollout {rollout_id} and cannot approve its waves (separation of duties); "
                         "ask another person with the role.")
    if wave.phase.is_started:
        raise InputError(f"wave {wave.name} is already {wave.phase}; approvals only matter before a wave starts.")
    with store.write() as db:
        db.execute("INSERT OR IGNORE INTO approvals VALUES (?,?,?,?,?,?,?)",
                   (rollout_id, wave.name, wave.hash, by, role, iso(now), comment))
        store.append_event(db, rollout_id, now, by, "approval.added",
                           {"wave": wave.name, "wave_hash": wave.hash, "role": role, "comment": comment})
    return wave


def _check_selector(store: SqliteStore, rollout_id: str, selector: str) -> str:
    keys = store.inventory_keys(rollout_id) | {"app", "tag"}
    try:
        return str(Selector.parse(selector, known_keys=keys))
    except SelectorSyntaxError as err:
        raise InputError(f"--selector: {err}") from None


def add_issue(store: SqliteStore, rollout_id: str, title: str, selector: str, severity: str | None, by: str,
              now: dt.datetime) -> int:
    """Report an issue; it is untriaged until it has a severity. Returns its id."""
    selector = _check_selector(store, rollout_id, selector)
    active = next((w.name for w in store.waves(rollout_id) if w.phase.is_started and not w.phase.is_terminal), None)
    if active is None:
        started = [w.name for w in store.waves(rollout_id) if w.phase.is_started]
        active = started[-1] if started else None
    with store.write() as db:
        return insert_issue(store, db, rollout_id, title, selector, Severity(severity).value if severity else None,
                             active, by, now)


def set_issue(store: SqliteStore, rollout_id: str, issue_id: int, by: str, now: dt.datetime,
              severity: str | None = None, status: str | None = None) -> None:
    """Triage: set severity and/or status, recording who decided and when."""
    if severity is None and status is None:
        raise InputError("give --severity and/or --status.")
    if not any(i.id == issue_id for i in store.issues(rollout_id)):
        raise NotFoundError(f"rollout {rollout_id} has no issue #{issue_id}; see `rollout triage list`.")
    changes = {"severity": Severity(severity).value if severity else None,
               "status": IssueStatus(status).value if status else None}
    with store.write() as db:
        for name, value in changes.items():
            if value is not None:
                db.execute(f"UPDATE issues SET {name}=?, decided_by=?, decided_at=? WHERE rollout_id=? AND id=?",
                           (value, by, iso(now), rollout_id, issue_id))
        store.append_event(db, rollout_id, now, by, "issue.triaged",
                           {"id": issue_id, **{k: v for k, v in changes.items() if v}})


def pause(store: SqliteStore, rollout_id: str, by: str, reason: str, now: dt.datetime) -> None:
    with store.write() as db:
        store.status(rollout_id)
        db.execute("UPDATE rollouts SET paused=1, pause_reason=? WHERE id=?", (reason, rollout_id))
        store.append_event(db, rollout_id, now, by, "rollout.paused", {"reason": reason})


def resume(store: SqliteStore, rollout_id: str, by: str, now: dt.datetime) -> list[str]:
    """Clear a pause or a halt and send held waves back to baking, to be judged again.

    After a halt, the next wave may start although the wave before it was rolled back; that
    wave's reverted devices ride with it. Returns the held waves that go back to baking.
    """
    waves = [w for w in store.waves(rollout_id) if w.phase == WavePhase.HELD]
    with store.write() as db:
        db.execute("UPDATE rollouts SET paused=0, pause_reason='', halted=0, halt_reason='' WHERE id=?",
                   (rollout_id,))
        for wave in waves:
            check_wave_move(wave.name, wave.phase, WavePhase.BAKING)
            db.execute("UPDATE waves SET phase=?, phase_since=?, consecutive_errors=0 WHERE rollout_id=? AND idx=?",
                       (WavePhase.BAKING.value, iso(now), rollout_id, wave.index))
        store.append_event(db, rollout_id, now, by, "rollout.resumed", {"waves": [w.name for w in waves]})
    return [w.name for w in waves]


ROLLBACK_FROM = (WavePhase.APPLYING, WavePhase.BAKING, WavePhase.HELD, WavePhase.PASSED)


def request_rollback(store: SqliteStore, rollout_id: str, wave_name: str, by: str, reason: str,
                     now: dt.datetime) -> WaveState:
    """Mark the wave failed and halt the rollout; the engine reverts its devices on its next tick."""
    wave = _wave(store, rollout_id, wave_name)
    if wave.phase in (WavePhase.FAILED, WavePhase.ROLLING_BACK, WavePhase.ROLLED_BACK):
        return wave  # already rolling back or rolled back: a second request changes nothing
    if wave.phase not in ROLLBACK_FROM:
        raise InputError(f"wave {wave.name} is {wave.phase}: nothing of it is migrated, so there is nothing to roll back.")
    with store.write() as db:
        db.execute("UPDATE waves SET phase=?, phase_since=? WHERE rollout_id=? AND idx=? AND phase=?",
                   (WavePhase.FAILED.value, iso(now), rollout_id, wave.index, wave.phase.value))
        db.execute("UPDATE rollouts SET halted=1, halt_reason=? WHERE id=?",
                   (f"wave {wave.name} rolled back on demand by {by}: {reason}", rollout_id))
        store.append_event(db, rollout_id, now, by, "wave.rollback_requested",
                           {"wave": wave.name, "from": wave.phase.value, "reason": reason})
    return wave


def issues_holding(store: SqliteStore, rollout_id: str) -> Sequence[tuple[int, int]]:
    """(issue id, devices it holds) for every open blocker."""
    blockers = [i for i in store.issues(rollout_id) if i.holds_devices]
    if not blockers:
        return []
    parked = [d.device_id for d in store.devices(rollout_id).values()
              if d.phase in (DevicePhase.HELD, DevicePhase.REVERTED)]
    inventory = store.inventory(rollout_id, parked)
    out = []
    for issue in blockers:
        matches = Selector.parse(issue.selector).predicate()
        out.append((issue.id, sum(1 for d in parked if matches(inventory[d]))))
    return out


def replan(store: SqliteStore, rollout_id: str, plan: Mapping[str, Any], by: str, now: dt.datetime) -> list[str]:
    """Adopt a new plan for the waves that have not started; returns the waves whose approvals it voids.

    Waves must keep their names and order. A wave whose content hash changes takes the new
    devices, bake, gates and required roles, and its approvals (bound to the old hash) stop
    counting: an approved wave goes back to planned. Started waves cannot change: a plan that
    moves a device of a started wave, or changes a started wave, is refused whole.
    """
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
    with store.write() as db:
        for wave, new in changed:
            phase = WavePhase.PLANNED if wave.phase == WavePhase.APPROVED else wave.phase
            db.execute("UPDATE waves SET hash=?, phase=?, approvals_required=?, bake_seconds=?, gates=? "
                       "WHERE rollout_id=? AND idx=?",
                       (new["hash"], phase.value, json.dumps(new["approvals"]), new["bake_seconds"],
                        json.dumps(new.get("gates") or {}), rollout_id, wave.index))
        for device_id, wave_index in target.items():
            if devices[device_id].wave != wave_index:
                db.execute("UPDATE devices SET wave=? WHERE rollout_id=? AND device_id=?",
                           (wave_index, rollout_id, device_id))
        db.execute("UPDATE rollouts SET plan_hash=?, plan_json=? WHERE id=?",
                   (plan["plan_hash"], json.dumps(dict(plan), ensure_ascii=False), rollout_id))
        store.append_event(db, rollout_id, now, by, "rollout.replanned",
                           {"plan_hash": plan["plan_hash"], "voided": [w.name for w, _ in changed]})
    return [w.name for w, _ in changed]
