"""A whole rollout against the simulator, in compressed time: ``rollout rehearse`` and the demo.

The rehearsal plays the people too, under names that say so: ``rehearsal-<role>`` approves each
wave for its current hash once the wave before it passed (one person per role; the rollout is
started by ``rehearsal-starter``, so separation of duties holds), triages the issues users report
(the scenario's ``issues``, reported while their wave bakes) with the scenario's severity, and
resolves them when the scenario says. Cohorts the engine quarantines stay held: lifting a
quarantine is a real decision. A wave held for a human ends the rehearsal, as it would stop the
real rollout. Time jumps from one thing that can change to the next (at most ``step``), so a
rollout of months runs in seconds. It can be resumed: run it again on the same state file.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rollout.backends.factory import BackendWrap, open_backend, simulator_settings
from rollout.backends.simulator import Scenario, Simulator
from rollout.core.approvals import is_approved
from rollout.core.device import Device
from rollout.core.model import IssueStatus, RolloutPhase, WavePhase, rollout_phase
from rollout.drive.driver import Driver, SimulatedClock, last_event_time
from rollout.drive.operations import add_issue, approve, set_issue, start_rollout
from rollout.store.api import StateStore
from rollout.store.sqlite import SqliteStore

STARTER = "rehearsal-starter"
TRIAGER = "rehearsal-pm"


def world_path(state: Path) -> Path:
    return state.with_name(state.name + ".world.db")


@dataclass
class Rehearsal:
    rollout_id: str
    ticks: int = 0
    phase: RolloutPhase = RolloutPhase.RUNNING
    started: dt.datetime | None = None
    ended: dt.datetime | None = None
    waves: list[dict[str, Any]] = field(default_factory=list)
    notices: list[str] = field(default_factory=list)
    duplicates: int | None = 0  # steps the simulator saw done twice (None: another backend counts its own)
    call_stats: Any = None  # the AWS backend's calls and retries (``rollout.backends.aws.calls.CallStats``)


def _act_as_people(store: StateStore, rollout_id: str, scenario: Scenario, now: dt.datetime) -> None:
    status = store.status(rollout_id)
    waves = store.waves(rollout_id)
    approvals = store.approvals(rollout_id)
    for wave in waves:
        if wave.phase == WavePhase.PLANNED and not is_approved(wave, approvals, status):
            previous = waves[wave.index - 1] if wave.index else None
            if previous is None or previous.phase.is_terminal:
                for role in wave.approvals_required:
                    approve(store, rollout_id, wave.name, f"rehearsal-{role}", role, "rehearsal", now)
            break
    issues = store.issues(rollout_id)
    titles = {i.title for i in issues}
    phases = {w.name: w.phase for w in waves}
    for reported in scenario.issues:
        if phases.get(reported.wave) == WavePhase.BAKING and reported.title not in titles:
            add_issue(store, rollout_id, reported.title, reported.selector, None, "rehearsal-user", now)
    by_title = {r.title: r for r in scenario.issues}
    for issue in store.issues(rollout_id):
        rule = by_title.get(issue.title)
        if issue.severity is None:
            set_issue(store, rollout_id, issue.id, TRIAGER, now, severity=rule.severity if rule else "major")
        if rule and rule.resolve_after and phases.get(rule.resolve_after) == WavePhase.PASSED \
                and issue.status == IssueStatus.OPEN:
            set_issue(store, rollout_id, issue.id, TRIAGER, now, status="resolved")


def rehearse(
    state: Path,
    plan: Mapping[str, Any],
    inventory: Mapping[str, Device],
    scenario: Scenario,
    *,
    start: dt.datetime,
    step: dt.timedelta = dt.timedelta(hours=6),
    max_ticks: int = 5000,
    on_tick: Callable[[Rehearsal, Driver], None] = lambda r, d: None,
    notify: Callable[[str], None] = lambda message: None,
    store: StateStore | None = None,
    backend: Mapping[str, Any] | None = None,
    session_factory: Any = None,
    wrap: BackendWrap | None = None,
) -> Rehearsal:
    """Rehearse ``plan`` (a plan file's JSON); resumes if the store holds it already.

    By default on the simulator, in the SQLite file ``state``; ``store`` and ``backend`` (settings
    as ``rollout.backends.factory`` reads them) rehearse elsewhere, e.g. through the AWS code path;
    ``wrap`` is handed to ``open_backend``.
    """
    store = store or SqliteStore(state)
    rollout_id = str(plan["rollout"])
    if rollout_id not in store.rollout_ids():
        start_rollout(store, rollout_id, plan, inventory, STARTER, True, start,
                      backend or simulator_settings(scenario, world_path(state)))
    backend_used = open_backend(store, rollout_id, default_world=world_path(state), session_factory=session_factory,
                                wrap=wrap)
    clock = SimulatedClock(last_event_time(store, rollout_id))
    result = Rehearsal(rollout_id, started=start)

    def collect(message: str) -> None:
        result.notices.append(f"{clock().date()} {message}")
        notify(f"{clock().date()} {message}")

    try:
        with Driver(store, rollout_id, backend_used, "rehearsal-driver", clock, notify=collect) as driver:
            for _ in range(max_ticks):
                _act_as_people(store, rollout_id, scenario, clock())
                decision = driver.tick()
                result.ticks += 1
                on_tick(result, driver)
                if driver.is_settled() or driver.phase() == RolloutPhase.PAUSED:
                    break
                clock.advance(decision.wake_at, step)
        result.phase = rollout_phase(store.status(rollout_id), store.waves(rollout_id))
        result.ended = clock()
        result.waves = wave_summary(store, rollout_id)
        result.duplicates = backend_used.duplicate_actions() if isinstance(backend_used, Simulator) else None
        result.call_stats = getattr(backend_used, "call_stats", None)
    finally:
        backend_used.close()
        store.close()
    return result


def wave_summary(store: StateStore, rollout_id: str) -> list[dict[str, Any]]:
    devices = store.devices(rollout_id)
    counts: dict[int, Counter[str]] = {}
    for device in devices.values():
        counts.setdefault(device.wave, Counter())[device.phase.value] += 1
    records: dict[int, dict[str, Any]] = {}
    for record in store.decisions(rollout_id):
        records[_index_of(store, rollout_id, record["wave"])] = record
    return [
        {"name": w.name, "phase": w.phase.value, "devices": dict(sorted(counts.get(w.index, Counter()).items())),
         "verdict": w.last_verdict, "reasons": records.get(w.index, {}).get("gate", {}).get("reasons", [])}
        for w in store.waves(rollout_id)
    ]


def _index_of(store: StateStore, rollout_id: str, wave_name: str) -> int:
    return next(w.index for w in store.waves(rollout_id) if w.name == wave_name)
