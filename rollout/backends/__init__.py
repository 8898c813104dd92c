"""Backends carry out migrations and report telemetry. Two implement ``Backend``: the rehearsal
simulator (``rollout.backends.simulator``) and AWS (a later module, same interface).

Contract: ``migrate`` and ``revert`` are idempotent per ``(op_id, device, step)``: running the same
operation again after a crash changes nothing twice. Each returns one StepResult per device, in
any order; a throttled or otherwise retriable failure is reported with ``retriable=True`` and is
never a device failure. ``read_signals`` never raises for telemetry trouble: it returns the error
as data in ``Signals.errors``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import Protocol

from rollout.engine import Signals
from rollout.inventory import Device
from rollout.recorder import StepResult


class Backend(Protocol):
    def migrate(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
                now: dt.datetime) -> list[StepResult]: ...

    def revert(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
               now: dt.datetime) -> list[StepResult]: ...

    def read_signals(self, rollout_id: str, wave: str, devices: Sequence[Device], now: dt.datetime) -> Signals: ...
