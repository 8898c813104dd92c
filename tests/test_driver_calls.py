"""The driver around long backend calls: the lease is kept while a call runs, a lost lease stops the
backend from sending more, and a person's rollback that lands during a tick stops its next batches."""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from rollout.core.decision import Signals
from rollout.core.device import Device
from rollout.core.model import DevicePhase, StepResult, WavePhase
from rollout.drive.driver import Driver, SimulatedClock
from rollout.drive.operations import approve, request_rollback
from rollout.store.api import StaleWriterError
from rollout.store.lease import LeaseHeldError, acquire_lease, force_unlock
from tests.rollout_builders import T0, fresh_store


class SlowBackend:
    """Migrates every device after ``pause`` seconds, unless told to abort; runs ``during`` first."""

    def __init__(self, pause: float, during: Any = None) -> None:
        self.pause, self.during, self.aborted, self.calls = pause, during, False, 0

    def migrate(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
                now: dt.datetime, **options: Any) -> list[StepResult]:
        self.calls += 1
        if self.during is not None:
            self.during()
        abort = options.get("abort")
        deadline = time.monotonic() + self.pause
        while time.monotonic() < deadline:
            if abort is not None and abort():
                self.aborted = True
                raise StaleWriterError("lost the lease during the call")
            time.sleep(0.02)
        return [StepResult(d.device_id, True, 7, now) for d in devices]

    def revert(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
               now: dt.datetime, **options: Any) -> list[StepResult]:
        return [StepResult(d.device_id, True, 0, now) for d in devices]

    def read_signals(self, rollout_id: str, wave: str, devices: Sequence[Device], now: dt.datetime,
                     **options: Any) -> Signals:
        return Signals()

    def close(self) -> None:
        pass


def approved(tmp_path: Path) -> tuple[Any, str]:
    store, rid = fresh_store(tmp_path / "state.db", n=200)
    for role in ("pm", "security"):
        approve(store, rid, "canary", f"approver-{role}", role, "", T0)
    return store, rid


def test_the_lease_is_kept_while_a_call_outlasts_it(tmp_path: Path) -> None:
    store, rid = approved(tmp_path)
    refused: list[bool] = []

    def try_to_take_it() -> None:
        time.sleep(3.0)  # past the driver's 2 s lease, had it not been renewed
        from rollout.store.sqlite import SqliteStore

        second = SqliteStore(tmp_path / "state.db")
        try:
            acquire_lease(second, rid, "intruder", time.time(), ttl=5, host="elsewhere")
        except LeaseHeldError:
            refused.append(True)
        second.close()

    backend = SlowBackend(4.0, during=lambda: threading.Thread(target=try_to_take_it).start())
    with Driver(store, rid, backend, "driver", SimulatedClock(T0), lease_ttl=2.0, batch_size=500) as driver:
        driver.tick()  # planned -> approved
        driver.tick()  # approved -> applying, and the canary's migrate call
    assert backend.calls == 1 and not backend.aborted
    assert refused == [True]
    assert {d.phase for d in store.devices(rid).values() if d.wave == 0} == {DevicePhase.MIGRATED}


def test_a_lease_lost_during_a_call_stops_the_backend(tmp_path: Path) -> None:
    store, rid = approved(tmp_path)

    def steal() -> None:
        from rollout.store.sqlite import SqliteStore

        def later() -> None:
            time.sleep(0.3)
            second = SqliteStore(tmp_path / "state.db")
            lease = second.lease_row(rid)
            assert lease is not None
            force_unlock(second, rid, lease.lease_id, "ops-lead", time.time())
            acquire_lease(second, rid, "new-driver", time.time(), ttl=60, host="elsewhere")
            second.close()

        threading.Thread(target=later).start()

    backend = SlowBackend(5.0, during=steal)
    with pytest.raises(StaleWriterError):
        with Driver(store, rid, backend, "driver", SimulatedClock(T0), lease_ttl=0.9, batch_size=500) as driver:
            driver.tick()
            driver.tick()
    assert backend.aborted  # within a third of the lease's time, not after the 5 s call
    assert {d.phase for d in store.devices(rid).values() if d.wave == 0} == {DevicePhase.MIGRATING}  # intent open


def test_a_rollback_that_lands_during_a_tick_stops_its_next_batches(tmp_path: Path) -> None:
    store, rid = approved(tmp_path)

    def roll_back_once() -> None:
        if backend.calls == 1:
            from rollout.store.sqlite import SqliteStore

            second = SqliteStore(tmp_path / "state.db")
            request_rollback(second, rid, "canary", "pm", "printing broke", T0)
            second.close()

    backend = SlowBackend(0.0, during=roll_back_once)
    notices: list[str] = []
    with Driver(store, rid, backend, "driver", SimulatedClock(T0), batch_size=10, notify=notices.append) as driver:
        driver.tick()
        driver.tick()
    assert backend.calls == 1  # the canary had 4 batches; after the rollback none more was sent
    assert store.waves(rid)[0].phase == WavePhase.FAILED
    assert any("stopped dispatching" in n and "no longer applying" in n for n in notices)
    pending = [d for d in store.devices(rid).values() if d.wave == 0 and d.phase == DevicePhase.PENDING]
    assert len(pending) == 30
