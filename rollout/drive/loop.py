"""Driving a rollout as ``rollout run`` does: starting it with its backend, and the tick loop.

``begin_rollout`` records the rollout and how it is driven (the backend's settings are worked out,
and checked, before anything is written). ``drive`` holds the lease and ticks until the rollout
completes, halts, waits for a person, or reaches ``until``; in real time it sleeps ``interval``
seconds between ticks that did nothing, in simulated time it jumps to the next change.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from rollout.backends import Backend
from rollout.core.approvals import missing_roles
from rollout.core.device import Device
from rollout.core.model import RolloutPhase
from rollout.drive.driver import Clock, Driver, SimulatedClock
from rollout.drive.operations import start_rollout
from rollout.errors import AwaitingHumanError
from rollout.store.api import StateStore
from rollout.store.lease import DEFAULT_TTL


def begin_rollout(store: StateStore, plan: Mapping[str, Any], devices: Mapping[str, Device], actor: str,
                  separation_of_duties: bool, backend: Mapping[str, Any], now: dt.datetime) -> None:
    """Record the rollout and the backend that drives it, together."""
    start_rollout(store, str(plan["rollout"]), plan, devices, actor, separation_of_duties, now, backend)


@dataclass(frozen=True)
class DriveOptions:
    once: bool = False
    until: str | None = None
    simulated: bool = False
    step: dt.timedelta = dt.timedelta(hours=6)
    interval: float = 60.0
    lease_ttl: float = DEFAULT_TTL


def drive(store: StateStore, rollout_id: str, backend: Backend, actor: str, options: DriveOptions, *,
          notify: Callable[[str], None] = lambda message: None,
          progress: Callable[[str, str, int, int], None] | None = None) -> RolloutPhase:
    """Tick until done (see the module docstring); returns the rollout's phase. Raises
    AwaitingHumanError in simulated time when only a person can move the rollout on."""
    clock: Clock = SimulatedClock(store.last_event_time(rollout_id)) if options.simulated else _now
    with Driver(store, rollout_id, backend, actor, clock, notify=notify, progress=progress,
                lease_ttl=options.lease_ttl) as driver:
        while True:
            decision = driver.tick()
            waves = {w.name: w for w in store.waves(rollout_id)}
            until = waves.get(options.until or "")
            if options.once or driver.is_settled() or (until is not None and until.phase.is_terminal):
                break
            if driver.phase() == RolloutPhase.PAUSED and not decision.calls:
                notify("The rollout is paused or a wave is held for a human; see `rollout status`.")
                break
            waiting = waiting_for(store, rollout_id) if decision.empty else ""
            if waiting and options.simulated:
                raise AwaitingHumanError(f"rollout {rollout_id}: {waiting}.")
            if isinstance(clock, SimulatedClock):
                clock.advance(decision.wake_at, options.step)
            elif not decision.calls:
                time.sleep(options.interval)
        return driver.phase()


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def waiting_for(store: StateStore, rollout_id: str) -> str:
    """What the next wave waits for when only a person can unblock it ('' if nothing)."""
    status = store.status(rollout_id)
    waves = store.waves(rollout_id)
    active = next((w for w in waves if not w.phase.is_terminal), None)
    if active is None or active.phase.is_started:
        return ""
    missing = missing_roles(active, store.approvals(rollout_id), status)
    if missing:
        return f"wave {active.name} waits for approval by {', '.join(missing)} (rollout approve {active.name} --role ROLE)"
    previous = waves[active.index - 1].name if active.index else None
    untriaged = [i.id for i in store.issues(rollout_id) if i.severity is None and i.reported_during == previous]
    if untriaged:
        return f"wave {active.name} waits for the triage of issue(s) {', '.join(f'#{i}' for i in untriaged)}"
    return ""
