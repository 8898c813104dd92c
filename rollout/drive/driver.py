"""The imperative shell around the engine: observe, decide, commit, act, repeat.

One ``tick``: finish any intent a killed driver left open (same operation ids, so nothing is done
twice); read the rollout and the active wave's telemetry; ``engine.decide``; commit the decision
in one fenced transaction; then run each backend call as intent -> call -> done; notify only
after the writes succeeded. The driver holds the rollout's lease for as long as it runs.

``ROLLOUT_FAULT_KILL_AT=<step>:<n>`` (for the crash harness) kills the process with SIGKILL the
n-th time it reaches a step boundary: ``before_intent``, ``after_intent``, ``after_backend``,
``after_done`` (``rollout.faults``; ``ROLLOUT_FAULT_STOP_AT`` pauses it instead). ``ROLLOUT_UNSAFE_NO_INTENTS=1`` switches intents off (the harness's control run,
which must find duplicate actions; never set it for a real rollout).
"""

from __future__ import annotations

import datetime as dt
import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

from rollout.backends import Backend
from rollout.core.decision import Call, Decision, Signals, Snapshot
from rollout.core.engine import decide
from rollout.core.model import (
    DevicePhase,
    DeviceState,
    RolloutPhase,
    StepResult,
    WavePhase,
    rollout_phase,
)
from rollout.drive.recorder import (
    apply_decision,
    finish_intent,
    open_intents,
    record_intent,
)
from rollout.faults import FaultSwitch
from rollout.store.api import ConflictError, Intent, StaleWriterError, StateStore
from rollout.store.lease import Lease, acquire_lease, release_lease, renew_lease

Clock = Callable[[], dt.datetime]


class SimulatedClock:
    """Compressed time for rehearsals: starts where the rollout's log ends, moves only when told."""

    def __init__(self, start: dt.datetime) -> None:
        self.now = start

    def __call__(self) -> dt.datetime:
        return self.now

    def advance(self, wake_at: dt.datetime | None, step: dt.timedelta) -> None:
        """Jump to ``wake_at`` if it comes sooner than one ``step``; else one step."""
        target = self.now + step
        if wake_at is not None and self.now < wake_at < target:
            target = wake_at
        self.now = target


def last_event_time(store: StateStore, rollout_id: str) -> dt.datetime:
    return store.last_event_time(rollout_id)


@dataclass
class Driver:
    store: StateStore
    rollout_id: str
    backend: Backend
    actor: str
    clock: Clock
    wall: Callable[[], float] = time.time
    use_intents: bool = True
    lease_ttl: float = 60.0
    batch_size: int = 250
    batches_per_tick: int = 8
    notify: Callable[[str], None] = lambda message: None
    progress: Callable[[str, str, int, int], None] | None = None  # (verb, wave, done, total) of a backend call
    lease: Lease | None = None
    checkpoint: Callable[[str], None] = field(default_factory=FaultSwitch)

    def __post_init__(self) -> None:
        if os.environ.get("ROLLOUT_UNSAFE_NO_INTENTS") == "1":
            self.use_intents = False
        self.inventory = self.store.inventory(self.rollout_id)
        self._devices: dict[str, DeviceState] | None = None
        self._epoch = -1

    def _device_states(self) -> dict[str, DeviceState]:
        """Device rows, cached between ticks: the driver holding the lease is their only writer but
        for a replan, which the cache notices (``device_rows_epoch``) and reloads for."""
        epoch = self.store.device_rows_epoch(self.rollout_id)
        if self._devices is None or epoch != self._epoch:
            self._devices, self._epoch = self.store.devices(self.rollout_id), epoch
        return self._devices

    def _refresh(self, device_ids: Iterable[str]) -> None:
        if self._devices is not None:
            self._devices.update(self.store.devices(self.rollout_id, list(device_ids)))

    def __enter__(self) -> Driver:
        self.lease = acquire_lease(self.store, self.rollout_id, self.actor, self.wall(), self.lease_ttl)
        return self

    def __exit__(self, *exc: object) -> None:
        if self.lease is not None:
            release_lease(self.store, self.lease, self.wall())
            self.lease = None

    def phase(self) -> RolloutPhase:
        return rollout_phase(self.store.status(self.rollout_id), self.store.waves(self.rollout_id))

    def tick(self) -> Decision:
        assert self.lease is not None, "drive inside `with Driver(...)`"
        self.lease = renew_lease(self.store, self.lease, self.wall(), self.lease_ttl)
        now = self.clock()
        self._reconcile(now)
        snap = Snapshot(self.store.status(self.rollout_id), self.store.waves(self.rollout_id),
                        dict(self._device_states()), self.inventory, self.store.approvals(self.rollout_id),
                        self.store.issues(self.rollout_id), self.batch_size, self.batches_per_tick)
        decision = decide(snap, self._signals(snap, now), now)
        if not decision.empty:
            try:
                apply_decision(self.store, self.rollout_id, self.lease.fence, decision, now, self.actor)
            except ConflictError:
                self._devices = None
                return Decision()  # someone changed the rollout meanwhile: decide again next tick
            except BaseException:
                self._devices = None
                raise
            self._refresh(m.device_id for m in decision.device_moves)
        for message in decision.notices:
            self.notify(message)
        budget_left: dict[int, int] = {}  # the error budget, as this tick's calls spend it
        for call in decision.calls:
            if call.verb == "migrate" and call.max_errors is not None:
                left = min(call.max_errors, budget_left.get(call.wave, call.max_errors))
                if left < 0:
                    continue  # spent: the engine fails the wave on the next tick
                call = Call(call.verb, call.wave, call.device_ids, left)
            try:
                results = self._execute(call, now)
            except ConflictError as err:  # a person halted or rolled back the wave since the decision
                self.notify(f"stopped dispatching: {err}")
                break
            if call.max_errors is not None:
                budget_left[call.wave] = call.max_errors - sum(1 for r in results if not r.ok and not r.retriable)
        return decision

    def _signals(self, snap: Snapshot, now: dt.datetime) -> Signals:
        active = next((w for w in snap.waves if not w.phase.is_terminal), None)
        if active is None or active.phase != WavePhase.BAKING:
            return Signals()
        devices = [self.inventory[d.device_id] for d in snap.devices.values()
                   if d.wave == active.index and d.migrated_at is not None]
        refs = {d.device_id: d.ref for d in snap.devices.values() if d.wave == active.index and d.ref}
        return self.backend.read_signals(self.rollout_id, active.name, devices, now, refs=refs)

    def _execute(self, call: Call, now: dt.datetime) -> list[StepResult]:
        assert self.lease is not None
        intent = Intent(uuid.uuid4().hex, call.verb, call.wave, call.device_ids, call.max_errors)
        self.checkpoint("before_intent")
        if self.use_intents:
            try:
                record_intent(self.store, self.rollout_id, self.lease.fence, intent, now, self.actor)
            finally:
                self._refresh(intent.device_ids)
        self.checkpoint("after_intent")
        return self._run(intent, now, recorded=self.use_intents)

    def _run(self, intent: Intent, now: dt.datetime, *, recorded: bool, replay: bool = False) -> list[StepResult]:
        assert self.lease is not None
        wave = self.store.waves(self.rollout_id)[intent.wave].name
        devices = [self.inventory[d] for d in intent.device_ids]
        steps = self.store.steps_of(self.rollout_id, intent.device_ids)
        known = self._device_states()
        refs = {d: known[d].ref for d in intent.device_ids if d in known and known[d].ref}
        progress = None
        if self.progress is not None:
            report = self.progress
            progress = lambda done, total: report(intent.verb, wave, done, total)  # noqa: E731
        with self._heartbeat() as lost:
            if intent.verb == "migrate":
                results = self.backend.migrate(intent.op_id, wave, devices, steps, now, max_errors=intent.max_errors,
                                               replay=replay, refs=refs, progress=progress, abort=lost.is_set)
            else:
                keep = {self.inventory[d].user for d, state in known.items()
                        if state.phase.is_on_zero_trust and state.phase != DevicePhase.REVERTING
                        and d not in set(intent.device_ids)}
                results = self.backend.revert(intent.op_id, wave, devices, steps, now, replay=replay, refs=refs,
                                              progress=progress, abort=lost.is_set, keep_access=keep)
        self.checkpoint("after_backend")
        try:
            finish_intent(self.store, self.rollout_id, self.lease.fence, intent, results, now, self.actor,
                          recorded=recorded)
        finally:
            self._refresh(intent.device_ids)
        self.checkpoint("after_done")
        return results

    @contextmanager
    def _heartbeat(self) -> Iterator[threading.Event]:
        """Keep the lease while a backend call runs (renewed every third of its time to live); the
        event is set if the lease was lost, and the backend stops sending anything more."""
        lost, done = threading.Event(), threading.Event()

        def beat() -> None:
            while not done.wait(self.lease_ttl / 3):
                assert self.lease is not None
                try:
                    self.lease = renew_lease(self.store, self.lease, self.wall(), self.lease_ttl)
                except StaleWriterError:
                    lost.set()
                    return

        thread = threading.Thread(target=beat, name="zt-lease", daemon=True)
        thread.start()
        try:
            yield lost
        finally:
            done.set()
            thread.join()

    def _reconcile(self, now: dt.datetime) -> None:
        """Finish the intents a killed driver left open, with their own operation ids."""
        for intent in open_intents(self.store, self.rollout_id):
            self._run(intent, now, recorded=True, replay=True)

    def is_settled(self) -> bool:
        """Nothing left to do: completed, or halted with every rollback finished."""
        phase = self.phase()
        if phase == RolloutPhase.COMPLETED:
            return True
        if phase != RolloutPhase.HALTED:
            return False
        waves = self.store.waves(self.rollout_id)
        return not any(w.phase in (WavePhase.FAILED, WavePhase.ROLLING_BACK) for w in waves) and \
            not self.store.count_devices(self.rollout_id, (DevicePhase.REVERTING, DevicePhase.MIGRATING))
