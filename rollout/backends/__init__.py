"""Backends carry out migrations and report telemetry.

This layer may import ``rollout.store``, ``rollout.plan``, ``rollout.core`` and the foundation;
never the driver or a face, nor the local AWS emulation (the demo hands its fleet in).
 Two implement ``Backend``: the rehearsal
simulator (``rollout.backends.simulator``) and AWS (``rollout.backends.aws.backend``).

Contract: ``migrate`` and ``revert`` are idempotent per ``(op_id, device, step)``: running the same
operation again after a crash (``replay=True``) changes nothing twice. Each returns one StepResult
per device, in any order; a throttled or otherwise retriable failure is reported with
``retriable=True`` and is never a device failure. With ``max_errors = N``, ``migrate`` stops
dispatching at the N+1-th failed device (SSM's MaxErrors); the devices it did not dispatch come
back ``retriable``. ``refs`` are the devices' references from earlier calls (``StepResult.ref``).
``progress(done, total)`` may be called as devices finish. ``abort()`` turns true when the driver
lost its lease during the call: the backend sends nothing more and raises StaleWriterError.
``revert``'s ``keep_access`` names users with another device still on zero trust (access is per
user). ``read_signals`` never raises for telemetry trouble: it returns the error as data in
``Signals.errors``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection, Mapping, Sequence
from typing import Protocol

from rollout.core.decision import Signals
from rollout.core.device import Device
from rollout.core.model import StepResult

Progress = Callable[[int, int], None]
Abort = Callable[[], bool]
NOT_DISPATCHED = "not dispatched: the wave's error budget is spent"


class Backend(Protocol):
    def migrate(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
                now: dt.datetime, *, max_errors: int | None = None, replay: bool = False,
                refs: Mapping[str, str] | None = None, progress: Progress | None = None,
                abort: Abort | None = None) -> list[StepResult]: ...

    def revert(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
               now: dt.datetime, *, replay: bool = False, refs: Mapping[str, str] | None = None,
               progress: Progress | None = None, abort: Abort | None = None,
               keep_access: Collection[str] = ()) -> list[StepResult]: ...

    def read_signals(self, rollout_id: str, wave: str, devices: Sequence[Device], now: dt.datetime, *,
                     refs: Mapping[str, str] | None = None) -> Signals: ...

    def close(self) -> None: ...
