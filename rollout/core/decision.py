"""The engine's inputs and outputs: what one tick sees (``Snapshot``, ``Signals``) and what it decides
(``Decision``: wave and device moves, backend ``Call``s, new issues, status changes, gate records).

Values only; the rules that produce a ``Decision`` are ``rollout.core.engine.decide``. A move is
checked against the one transition table (``rollout.core.model``) as it is added.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from rollout.core.device import Device
from rollout.core.model import (
    Approval,
    DevicePhase,
    DeviceState,
    Issue,
    RolloutStatus,
    Severity,
    WavePhase,
    WaveState,
    check_device_move,
    check_wave_move,
)
from rollout.core.verdicts import AlarmState, HealthReport


@dataclass(frozen=True, slots=True)
class Snapshot:
    status: RolloutStatus
    waves: Sequence[WaveState]
    devices: Mapping[str, DeviceState]
    inventory: Mapping[str, Device]
    approvals: Sequence[Approval]
    issues: Sequence[Issue]
    batch_size: int = 250
    batches_per_tick: int = 8


@dataclass(frozen=True, slots=True)
class Signals:
    """Telemetry for the active wave, read by the driver before the tick."""

    reports: Mapping[str, HealthReport] = field(default_factory=dict)
    tickets: Mapping[str, int] = field(default_factory=dict)
    alarms: Sequence[AlarmState] = ()
    errors: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class WaveMove:
    index: int
    old: WavePhase
    new: WavePhase
    reason: str
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class DeviceMove:
    device_id: str
    old: DevicePhase
    new: DevicePhase
    fields: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Call:
    """A batch for the backend: ``migrate`` runs the migration steps, ``revert`` undoes them.

    ``max_errors`` (migrate): failed migrations the wave may still have before it fails; the
    backend stops dispatching at the next one (SSM's MaxErrors), the driver across a tick's calls.
    """

    verb: str
    wave: int
    device_ids: tuple[str, ...]
    max_errors: int | None = None


@dataclass(frozen=True, slots=True)
class NewIssue:
    title: str
    selector: str
    severity: Severity
    reported_during: str


@dataclass(slots=True)
class Decision:
    wave_moves: list[WaveMove] = field(default_factory=list)
    device_moves: list[DeviceMove] = field(default_factory=list)
    calls: list[Call] = field(default_factory=list)
    new_issues: list[NewIssue] = field(default_factory=list)
    status: dict[str, Any] = field(default_factory=dict)  # paused/pause_reason/halted/halt_reason
    wave_fields: dict[int, dict[str, Any]] = field(default_factory=dict)  # e.g. consecutive_errors, last_verdict
    records: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (wave, gate decision record)
    notices: list[str] = field(default_factory=list)
    wake_at: dt.datetime | None = None

    @property
    def empty(self) -> bool:
        return not (self.wave_moves or self.device_moves or self.calls or self.new_issues or self.status
                    or self.wave_fields or self.records)

    def move_wave(self, wave: WaveState, new: WavePhase, reason: str, **fields: Any) -> None:
        check_wave_move(wave.name, wave.phase, new)
        self.wave_moves.append(WaveMove(wave.index, wave.phase, new, reason, fields))

    def move_device(self, device: DeviceState, new: DevicePhase, **fields: Any) -> None:
        check_device_move(device.device_id, device.phase, new)
        self.device_moves.append(DeviceMove(device.device_id, device.phase, new, fields))

    def wake(self, at: dt.datetime) -> None:
        self.wake_at = at if self.wake_at is None else min(self.wake_at, at)
