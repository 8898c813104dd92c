"""A Hypothesis state machine over the real pieces: SqliteStore, the Simulator (with fault rules and
injected alarms and telemetry errors), the Driver on a simulated clock, and the human operations.

People approve (the right person, the starter, a stale hash), tick, break and heal devices, raise
alarms, triage issues, change the plan, pause, roll back, resume, and crash the driver mid-call.
After every step the invariants hold:

- every device is accounted for: one row each, in one wave, the count never changes;
- no held or quarantined device is migrated: a device an open blocker matches is on zero trust
  only if it already was when the blocker opened (and has stayed so since);
- no wave started without valid approvals for its current hash at the moment it started (checked
  against the approvals table by an independent reading of the rules, right after each tick);
- a rolled-back wave leaves none of its devices on zero trust, in the store or in the world;
- the simulator saw no step done twice (``duplicate_actions() == 0``).

The mutants at the end (self-approval, approval carried to another wave, a rollback that skips a
device) must each be caught by these invariants.
"""

from __future__ import annotations

import datetime as dt
import itertools
import shutil
import sqlite3
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    rule,
    run_state_machine_as_test,
)

from rollout.backends.simulator import Scenario, Simulator
from rollout.core import approvals as approvals_module
from rollout.core import engine
from rollout.core.decision import Call, Decision, Signals
from rollout.core.device import Device
from rollout.core.model import MIGRATE_STEPS, DevicePhase, StepResult, WavePhase
from rollout.core.selectors import Selector
from rollout.core.verdicts import AlarmState
from rollout.drive.driver import Driver, SimulatedClock
from rollout.drive.operations import (
    add_issue,
    approve,
    pause,
    request_rollback,
    resume,
    set_issue,
    start_rollout,
)
from rollout.errors import RolloutError
from rollout.store.sqlite import SqliteStore, iso
from tests.engine_builders import NOW, STARTER, fleet, wave_name

D, W = DevicePhase, WavePhase
ROLLOUT = "zt-sm"
N_DEVICES, N_WAVES = 30, 3
SELECTORS = ("model=FMV LIFEBOOK U9", "model=ThinkPad X1 Carbon Gen 11", "department=営業部", "site=tokyo")
PEOPLE = ("sato", "suzuki", STARTER)
ON_ZERO_TRUST = {D.MIGRATING, D.MIGRATED, D.VERIFIED, D.DEFERRED, D.FAILED, D.REVERTING}
TMP_ROOT = Path("/dev/shm") if Path("/dev/shm").is_dir() else None


class Crash(BaseException):
    """The driver process dies at a step boundary (raised from its checkpoint)."""


@dataclass
class Telemetry:
    """A backend seam around the Simulator that adds alarms and telemetry errors to its signals."""

    sim: Simulator
    alarms: list[AlarmState] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)

    def migrate(self, op_id: str, wave: str, devices: Sequence[Device], steps: Any, now: dt.datetime,
                **options: Any) -> list[StepResult]:
        return self.sim.migrate(op_id, wave, devices, steps, now, **options)

    def revert(self, op_id: str, wave: str, devices: Sequence[Device], steps: Any, now: dt.datetime,
               **options: Any) -> list[StepResult]:
        return self.sim.revert(op_id, wave, devices, steps, now, **options)

    def read_signals(self, rollout_id: str, wave: str, devices: Sequence[Device], now: dt.datetime,
                     **options: Any) -> Signals:
        got = self.sim.read_signals(rollout_id, wave, devices, now, **options)
        return replace(got, alarms=(*got.alarms, *self.alarms), errors=(*got.errors, *self.errors))

    def close(self) -> None:
        self.sim.close()


def make_plan() -> tuple[dict[str, Any], dict[str, Device]]:
    devices = fleet(N_DEVICES, 11)
    per = N_DEVICES // N_WAVES
    waves = [{"index": i, "name": wave_name(i), "hash": f"hash-{i}-v1", "canary": i == 0,
              "approvals": ["pm", "security"] if i == 0 else ["pm"], "bake_seconds": 3600,
              "gates": {"min_checkins": 3, "coverage": 0.6, "checkin_deadline": 6 * 3600,
                        "cohort": {"keys": ["model"], "min_failures": 3, "alpha": 0.01}},
              "devices": [d.device_id for d in devices[i * per:(i + 1) * per]]} for i in range(N_WAVES)]
    return {"rollout": ROLLOUT, "plan_hash": "p" * 64, "waves": waves}, {d.device_id: d for d in devices}


def approved_under_the_rules(wave: Any, rows: list[sqlite3.Row], starter: str) -> bool:
    """The approval rule, read independently of rollout.core.approvals: each required role filled by a
    different person who approved this wave's name and current hash and did not start the rollout."""
    valid = {(r["by_whom"], r["role"]) for r in rows
             if r["wave"] == wave.name and r["wave_hash"] == wave.hash and r["by_whom"] != starter}
    people = sorted({p for p, _ in valid})
    roles = wave.approvals_required
    return any(all((p, role) in valid for p, role in zip(chosen, roles))
               for chosen in itertools.permutations(people, len(roles)))


class RolloutMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="zt-sm-", dir=TMP_ROOT))
        self.plan_json, self.inventory = make_plan()
        self.store = SqliteStore(self.dir / "state.db")
        start_rollout(self.store, ROLLOUT, self.plan_json, self.inventory, STARTER, True, NOW)
        self.clock = SimulatedClock(NOW)
        self.wall = 1_000_000.0
        self.faults: list[dict[str, Any]] = []
        self.telemetry = Telemetry(self._simulator())
        self.driver = self._driver()
        self.seen_events = 0
        self.grandfathered: dict[int, set[str]] = {}  # holding issue -> devices on zero trust when it opened
        self.versions = itertools.count(2)
        self._check_new_events()

    # -- plumbing ------------------------------------------------------------------------------

    def _simulator(self) -> Simulator:
        scenario = Scenario.model_validate({"seed": 3, "baseline_failure": 0.0, "offline": 0.0,
                                            "checkin_delay": {"min": 60, "max": 1800}, "faults": self.faults})
        return Simulator(self.dir / "world.db", scenario)

    def _driver(self) -> Driver:
        driver = Driver(self.store, ROLLOUT, self.telemetry, "driver", self.clock, wall=lambda: self.wall,
                        batch_size=4, batches_per_tick=2)
        driver.__enter__()
        return driver

    def teardown(self) -> None:
        event("furthest wave phase: " + ",".join(w.phase.value for w in self.store.waves(ROLLOUT)))
        self.telemetry.sim.close()
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def now(self) -> dt.datetime:
        return self.clock()

    def _tick(self) -> None:
        self.wall += 1
        decision = self.driver.tick()
        self._check_new_events()
        self.clock.advance(decision.wake_at, dt.timedelta(minutes=30))

    def _check_new_events(self) -> None:
        """Right after a tick: every wave that started did so with valid approvals for its hash."""
        events = list(self.store.events(ROLLOUT))[self.seen_events:]
        self.seen_events += len(events)
        waves = self.store.waves(ROLLOUT)
        rows = self.store.db.execute("SELECT * FROM approvals WHERE rollout_id=?", (ROLLOUT,)).fetchall()
        for logged in events:
            if logged.kind == "wave.applying":
                wave = waves[logged.data["wave"]]
                assert approved_under_the_rules(wave, rows, STARTER), f"{wave.name} started without valid approvals"
        self._note_blockers()

    def _note_blockers(self) -> None:
        devices = self.store.devices(ROLLOUT)
        holding = {i.id: i for i in self.store.issues(ROLLOUT) if i.holds_devices}
        for issue_id in list(self.grandfathered):
            if issue_id not in holding:
                del self.grandfathered[issue_id]
        for issue_id, issue in holding.items():
            selector = Selector.parse(issue.selector)
            on = {d for d, s in devices.items() if s.phase in ON_ZERO_TRUST and selector.matches(self.inventory[d])}
            if issue_id not in self.grandfathered:
                self.grandfathered[issue_id] = on
            else:  # a device that left zero trust is no longer excused
                self.grandfathered[issue_id] &= on

    def _insert_approval(self, wave: str, by: str, role: str, wave_hash: str) -> None:
        """An approval row as it would be after a bypass of the command's checks (or an old plan's)."""
        with self.store.write() as db:
            db.execute("INSERT OR IGNORE INTO approvals VALUES (?,?,?,?,?,?,?)",
                       (ROLLOUT, wave, wave_hash, by, role, iso(self.now()), "state machine"))
            self.store.append_event(db, ROLLOUT, self.now(), by, "approval.added",
                                    {"wave": wave, "wave_hash": wave_hash, "role": role})

    # -- rules ---------------------------------------------------------------------------------

    @initialize(approve_canary=st.booleans(), with_starter=st.booleans())
    def plan(self, approve_canary: bool, with_starter: bool) -> None:
        """The rollout is planned and started (in ``__init__``); often the canary is approved at once."""
        if approve_canary:
            self.approve_properly(0, with_starter)

    @rule(index=st.integers(0, N_WAVES - 1), who=st.sampled_from(PEOPLE), role=st.sampled_from(("pm", "security")),
          stale=st.booleans())
    def approve_wave(self, index: int, who: str, role: str, stale: bool) -> None:
        wave = self.store.waves(ROLLOUT)[index]
        if stale or who == STARTER:  # the wrong hash, or the wrong person: recorded, must never count
            self._insert_approval(wave.name, who, role, wave.hash + "-stale" if stale else wave.hash)
            return
        try:
            approve(self.store, ROLLOUT, wave.name, who, role, "", self.now())
        except RolloutError:
            pass

    @rule(index=st.integers(0, N_WAVES - 1), with_starter=st.booleans())
    def approve_properly(self, index: int, with_starter: bool) -> None:
        """Each required role approves the wave's current hash (so the machine gets somewhere); with
        ``with_starter`` the rollout's starter fills the first role, which must never count."""
        wave = self.store.waves(ROLLOUT)[index]
        people = (STARTER, "suzuki") if with_starter else ("sato", "suzuki")
        for who, role in zip(people, wave.approvals_required):
            if who == STARTER:
                self._insert_approval(wave.name, who, role, wave.hash)
                continue
            try:
                approve(self.store, ROLLOUT, wave.name, who, role, "", self.now())
            except RolloutError:
                pass

    @rule(index=st.integers(0, N_WAVES - 1))
    def change_plan(self, index: int) -> None:
        """A new plan changes a wave that has not started: its hash changes, its approvals are void."""
        wave = self.store.waves(ROLLOUT)[index]
        if wave.phase.is_started:
            return
        with self.store.write() as db:
            db.execute("UPDATE waves SET hash=? WHERE rollout_id=? AND idx=?",
                       (f"hash-{index}-v{next(self.versions)}", ROLLOUT, index))

    @rule(ticks=st.integers(1, 4))
    def tick(self, ticks: int) -> None:
        for _ in range(ticks):
            self._tick()

    @rule(ticks=st.integers(2, 10), with_starter=st.booleans())
    def next_wave(self, ticks: int, with_starter: bool) -> None:
        """The next unstarted wave is approved (see ``approve_properly``) and the driver runs on."""
        wave = next((w for w in self.store.waves(ROLLOUT) if not w.phase.is_started), None)
        if wave is not None:
            self.approve_properly(wave.index, with_starter)
        self.tick(ticks)

    @rule(selector=st.sampled_from(SELECTORS), check=st.sampled_from(("kitting", "migrate", "signin")),
          probability=st.sampled_from((0.5, 1.0)))
    def devices_fail(self, selector: str, check: str, probability: float) -> None:
        self.faults.append({"selector": selector, "check": check, "probability": probability})
        self.telemetry.sim.close()
        self.telemetry.sim = self._simulator()

    @rule()
    def devices_ok(self) -> None:
        self.faults.clear()
        self.telemetry.sim.close()
        self.telemetry.sim = self._simulator()

    @rule(state=st.sampled_from(("ALARM", "INSUFFICIENT_DATA", "OK")))
    def gate_alarm(self, state: str) -> None:
        self.telemetry.alarms = [AlarmState("ztna-errors", state)]

    @rule()
    def inconclusive(self) -> None:
        self.telemetry.alarms = [AlarmState("signin-latency", "INSUFFICIENT_DATA")]

    @rule()
    def telemetry_error(self) -> None:
        self.telemetry.errors = ["GetMetricData: ThrottlingException"]

    @rule()
    def telemetry_heals(self) -> None:
        self.telemetry.alarms, self.telemetry.errors = [], []

    @rule(selector=st.sampled_from(SELECTORS), severity=st.sampled_from((None, "blocker", "major", "minor")))
    def triage_add(self, selector: str, severity: str | None) -> None:
        add_issue(self.store, ROLLOUT, "users report a problem", selector, severity, "user", self.now())
        self._note_blockers()

    @rule(data=st.data(), severity=st.sampled_from((None, "blocker", "major", "minor")),
          status=st.sampled_from((None, "open", "workaround", "resolved", "accepted")))
    def triage_set(self, data: st.DataObject, severity: str | None, status: str | None) -> None:
        issues = self.store.issues(ROLLOUT)
        if not issues or (severity is None and status is None):
            return
        issue = data.draw(st.sampled_from(issues))
        set_issue(self.store, ROLLOUT, issue.id, "sato", self.now(), severity=severity, status=status)
        self._note_blockers()

    @rule()
    def pause_rollout(self) -> None:
        pause(self.store, ROLLOUT, "sato", "state machine", self.now())

    @rule()
    def resume_rollout(self) -> None:
        resume(self.store, ROLLOUT, "sato", self.now())

    @rule(index=st.integers(0, N_WAVES - 1))
    def rollback(self, index: int) -> None:
        try:
            request_rollback(self.store, ROLLOUT, wave_name(index), "sato", "state machine", self.now())
        except RolloutError:
            pass

    @rule(at=st.sampled_from(("after_intent", "after_backend", "after_done")))
    def crash_restart(self, at: str) -> None:
        """The driver dies at a step boundary of its next call; a new process reopens the files."""
        def die(step: str) -> None:
            if step == at:
                raise Crash(step)
        self.driver.checkpoint = die
        try:
            self._tick()
        except Crash:
            pass
        self._check_new_events()
        self.telemetry.sim.close()
        self.store.close()  # no lease release: the process is gone
        self.store = SqliteStore(self.dir / "state.db")
        self.telemetry.sim = self._simulator()
        self.wall += 3600  # past the dead driver's lease
        self.driver = self._driver()

    # -- invariants ----------------------------------------------------------------------------

    @invariant()
    def every_device_accounted_for_in_one_wave(self) -> None:
        rows = self.store.db.execute("SELECT device_id, wave FROM devices WHERE rollout_id=?", (ROLLOUT,)).fetchall()
        assert len(rows) == N_DEVICES
        assert {r[0] for r in rows} == set(self.inventory)
        assert all(0 <= r[1] < N_WAVES for r in rows)

    @invariant()
    def no_held_or_quarantined_device_migrated(self) -> None:
        devices = self.store.devices(ROLLOUT)
        for issue in self.store.issues(ROLLOUT):
            if not issue.holds_devices:
                continue
            selector = Selector.parse(issue.selector)
            excused = self.grandfathered.get(issue.id, set())
            for device_id, device in devices.items():
                if device.phase in ON_ZERO_TRUST and selector.matches(self.inventory[device_id]):
                    assert device_id in excused, \
                        f"{device_id} ({device.phase}) matches open blocker #{issue.id} {issue.selector}"

    @invariant()
    def a_rolled_back_wave_leaves_nothing_on_zero_trust(self) -> None:
        devices = self.store.devices(ROLLOUT)
        world = dict(self.telemetry.sim.db.execute("SELECT device_id, steps FROM fleet").fetchall())
        for wave in self.store.waves(ROLLOUT):
            if wave.phase != W.ROLLED_BACK:
                continue
            for device in devices.values():
                if device.wave == wave.index:
                    assert device.phase not in ON_ZERO_TRUST, f"{device.device_id} is {device.phase} in {wave.name}"
                    assert world.get(device.device_id, 0) == 0 or device.phase in (D.MIGRATING,), device

    @invariant()
    def no_step_done_twice(self) -> None:
        assert self.telemetry.sim.duplicate_actions() == 0

    @invariant()
    def store_and_world_agree_on_settled_devices(self) -> None:
        world = dict(self.telemetry.sim.db.execute("SELECT device_id, steps FROM fleet").fetchall())
        full = (1 << len(MIGRATE_STEPS)) - 1
        for device in self.store.devices(ROLLOUT).values():
            if device.phase in (D.MIGRATED, D.VERIFIED, D.DEFERRED):
                assert world.get(device.device_id) == full, device
            elif device.phase in (D.PENDING, D.HELD, D.REVERTED):
                assert world.get(device.device_id, 0) == 0, device


SETTINGS = settings(max_examples=300, stateful_step_count=40, deadline=None,
                    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])


@pytest.mark.parametrize("examples", [pytest.param(300, id="pr"),
                                      pytest.param(3000, id="exhaustive", marks=pytest.mark.nightly)])
def test_the_rollout_state_machine_keeps_its_invariants(examples: int) -> None:
    run_state_machine_as_test(RolloutMachine, settings=settings(SETTINGS, max_examples=examples))


# --- seeded mutants: each must be caught -----------------------------------------------------------

def _self_approval(monkeypatch: pytest.MonkeyPatch) -> None:
    def valid(wave: Any, approvals: Any, status: Any) -> list[Any]:
        return [a for a in approvals if a.wave == wave.name and a.wave_hash == wave.hash]  # the starter counts
    monkeypatch.setattr(approvals_module, "valid_approvals", valid)


def _approval_carried(monkeypatch: pytest.MonkeyPatch) -> None:
    def valid(wave: Any, approvals: Any, status: Any) -> list[Any]:  # keyed by nothing: carried to any wave
        return [a for a in approvals if not (status.separation_of_duties and a.by == status.started_by)]
    monkeypatch.setattr(approvals_module, "valid_approvals", valid)


def _rollback_skips_a_device(monkeypatch: pytest.MonkeyPatch) -> None:
    original = engine._start_rollback

    def skipping(snap: Any, wave: Any, by_wave: Any, d: Decision) -> None:
        moves, calls = len(d.device_moves), len(d.calls)
        original(snap, wave, by_wave, d)
        if len(d.device_moves) > moves:
            dropped = d.device_moves.pop().device_id
            d.calls[calls:] = [Call(c.verb, c.wave, tuple(x for x in c.device_ids if x != dropped))
                               for c in d.calls[calls:] if c.device_ids != (dropped,)]
    monkeypatch.setattr(engine, "_start_rollback", skipping)


# A mutant only has to be caught, not explained: no shrinking of the failing example, which took most
# of these tests' time and proves nothing more.
MUTANT_SETTINGS = settings(max_examples=300, stateful_step_count=40, deadline=None, database=None, derandomize=True,
                           suppress_health_check=list(HealthCheck), phases=(Phase.explicit, Phase.generate))


@pytest.mark.parametrize("mutate", [_self_approval, _approval_carried, _rollback_skips_a_device],
                         ids=["self-approval allowed", "approval carried to the next wave", "rollback skips a device"])
def test_seeded_mutants_are_caught(mutate: Callable[[pytest.MonkeyPatch], None],
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    mutate(monkeypatch)
    with pytest.raises(AssertionError):
        run_state_machine_as_test(RolloutMachine, settings=MUTANT_SETTINGS)
