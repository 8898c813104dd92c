"""The state store's interface: what every store (SQLite, DynamoDB) reads and how it writes.

Writes are *change sets*. A command or a tick builds one ``Changes`` from a ``TxView`` (what the
store holds at the moment of the write) and the store applies it atomically, with its audit
events, in ``transact(rollout_id, build, fence)``:

- ``build`` may read the view and raise (a lease held by someone else, an unknown rollout); the
  store calls it inside its transaction (SQLite: ``BEGIN IMMEDIATE``) or, with optimistic
  concurrency (DynamoDB), again after losing a race, so it must be a pure function of the view.
- ``RowChange.expect`` is compare-and-set: ``{"phase": "baking"}`` means "only if the row is still
  baking". A row that changed raises ``ConflictError`` and nothing is written.
- With ``fence``, the write is refused with ``StaleWriterError`` unless that lease still holds the
  rollout; nothing is written.
- Events are appended to the rollout's hash chain in the same transaction, in order.

The logic of *what* to write lives once, in ``rollout.drive.recorder``, ``rollout.drive.operations`` and
``rollout.store.lease``; a store only knows *how*. The same test suite runs against every store.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from rollout.core.audit import AuditReport, Event
from rollout.core.device import Device
from rollout.core.model import (
    Approval,
    DevicePhase,
    DeviceState,
    Issue,
    RolloutStatus,
    WavePhase,
    WaveState,
)
from rollout.errors import RolloutError


class StaleWriterError(RolloutError):
    """This driver's lease was taken over: its write was refused and nothing was written."""


class ConflictError(RolloutError):
    """The state changed under the writer (another command ran); read again and decide again."""


@dataclass(frozen=True, slots=True)
class Fence:
    """What a driver's write carries: its lease id and fencing number."""

    lease_id: str
    number: int


@dataclass(frozen=True, slots=True)
class LeaseRow:
    """The lease as stored: who drives the rollout, until when (epoch seconds), with which fence."""

    lease_id: str
    holder: str
    host: str
    pid: int
    acquired_at: float
    expires_at: float
    fence: int


@dataclass(frozen=True, slots=True)
class Intent:
    """A backend call recorded before it runs (``open``) and after (``done``)."""

    op_id: str
    verb: str
    wave: int
    device_ids: tuple[str, ...]
    max_errors: int | None = None  # the error budget the call was given (replayed with it)


@dataclass(frozen=True, slots=True)
class RowChange:
    """Set ``fields`` on the row ``key``; only if its current values equal ``expect``."""

    key: Any
    fields: Mapping[str, Any]
    expect: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class EventDraft:
    at: dt.datetime
    actor: str
    kind: str
    data: Mapping[str, Any]


UNCHANGED: Any = object()  # ``Changes.lease`` default: the lease is not touched


@dataclass
class Changes:
    """One atomic write. Field values are Python values (datetimes, bools, dicts, tuples)."""

    rollout: dict[str, Any] = field(default_factory=dict)  # paused, pause_reason, halted, ..., plan_json, backend
    waves: list[RowChange] = field(default_factory=list)  # key: wave index
    devices: list[RowChange] = field(default_factory=list)  # key: device id
    approvals: list[Approval] = field(default_factory=list)  # inserted unless the same one exists
    new_issues: list[Issue] = field(default_factory=list)  # ids from ``TxView.next_issue_id``
    issues: list[RowChange] = field(default_factory=list)  # key: issue id
    decisions: list[tuple[int, dict[str, Any]]] = field(default_factory=list)  # (wave index, record)
    new_intents: list[tuple[Intent, dt.datetime]] = field(default_factory=list)
    done_intents: list[tuple[str, dt.datetime]] = field(default_factory=list)  # (op id, done at)
    lease: LeaseRow | None = UNCHANGED  # a new lease row, None to remove it
    last_fence: int | None = None
    events: list[EventDraft] = field(default_factory=list)

    def event(self, at: dt.datetime, actor: str, kind: str, data: Mapping[str, Any]) -> None:
        self.events.append(EventDraft(at, actor, kind, dict(data)))


class TxView(Protocol):
    """What ``build`` may read inside a write: the state as of the write."""

    def status(self) -> RolloutStatus: ...  # raises NotFoundError for an unknown rollout

    def lease(self) -> LeaseRow | None: ...

    def last_fence(self) -> int: ...

    def next_issue_id(self) -> int: ...

    def wave_phase(self, index: int) -> WavePhase: ...


Build = Callable[[TxView], Changes]


@dataclass(frozen=True, slots=True)
class RolloutDump:
    """A whole rollout, exactly as stored, for ``rollout state migrate``."""

    status: RolloutStatus
    plan: dict[str, Any]
    backend: dict[str, Any]
    waves: list[WaveState]
    devices: list[DeviceState]
    inventory: dict[str, Device]
    approvals: list[Approval]
    issues: list[Issue]
    decisions: list[tuple[int, dict[str, Any]]]
    intents: list[tuple[Intent, str, str, str | None]]  # (intent, state, created_at, done_at)
    events: list[Event]
    last_fence: int
    replans: int
    notices: list[SentNotice] = field(default_factory=list)  # every employee notice sent, so none goes twice


@dataclass(frozen=True, slots=True)
class SentNotice:
    """One employee notice sent (``rollout.store.notice_records``)."""

    wave: str
    template_version: str
    recipient_key: str  # the address, NFKC-normalised and case-folded
    recipient: str  # the address as the notice was sent to it
    message_id: str
    sent_at: str


class StateStore(Protocol):
    """Durable rollout state. ``location`` names the store in messages (``sqlite:PATH``, ``dynamodb://T``)."""

    location: str

    def close(self) -> None: ...

    def create_rollout(self, status: RolloutStatus, waves: Sequence[WaveState], devices: Sequence[DeviceState],
                       inventory: Sequence[Device], plan: dict[str, Any], now: dt.datetime, *,
                       backend: dict[str, Any] | None = None) -> None: ...

    def transact(self, rollout_id: str, build: Build, fence: Fence | None = None) -> Changes: ...

    def rollout_ids(self) -> list[str]: ...

    def status(self, rollout_id: str) -> RolloutStatus: ...

    def waves(self, rollout_id: str) -> list[WaveState]: ...

    def devices(self, rollout_id: str, ids: Sequence[str] | None = None) -> dict[str, DeviceState]: ...

    def device_counts(self, rollout_id: str) -> dict[DevicePhase, int]: ...

    def count_devices(self, rollout_id: str, phases: Sequence[DevicePhase]) -> int: ...

    def wave_device_counts(self, rollout_id: str) -> dict[int, dict[DevicePhase, int]]: ...

    def device_ids_in(self, rollout_id: str, phases: Sequence[DevicePhase]) -> list[str]: ...

    def device_rows_epoch(self, rollout_id: str) -> int: ...

    def steps_of(self, rollout_id: str, device_ids: Sequence[str]) -> dict[str, int]: ...

    def inventory(self, rollout_id: str, ids: Sequence[str] | None = None) -> dict[str, Device]: ...

    def inventory_keys(self, rollout_id: str) -> set[str]: ...

    def approvals(self, rollout_id: str) -> list[Approval]: ...

    def issues(self, rollout_id: str) -> list[Issue]: ...

    def decisions(self, rollout_id: str) -> list[dict[str, Any]]: ...

    def open_intents(self, rollout_id: str) -> list[Intent]: ...

    def lease_row(self, rollout_id: str) -> LeaseRow | None: ...

    def plan_json(self, rollout_id: str) -> dict[str, Any]: ...

    def backend_settings(self, rollout_id: str) -> dict[str, Any]: ...

    def events(self, rollout_id: str) -> Iterator[Event]: ...

    def audit_head(self, rollout_id: str) -> tuple[int, str]: ...

    def verify_audit(self, rollout_id: str) -> AuditReport: ...

    def last_event_time(self, rollout_id: str) -> dt.datetime: ...

    def export_rollout(self, rollout_id: str) -> RolloutDump: ...

    def import_rollout(self, dump: RolloutDump) -> None: ...

    def notices_sent(self, rollout_id: str, wave: str, template_version: str) -> dict[str, SentNotice]: ...

    def record_notice_sent(self, rollout_id: str, notice: SentNotice) -> None: ...
