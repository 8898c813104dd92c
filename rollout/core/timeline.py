"""Devices on zero trust over time, replayed from the audit log. Pure.

``migration_timeline(events)`` walks the hash-chained events in order and keeps every device's
phase as the events set it:

- ``call.migrate.intent``: its devices become *migrating*;
- ``call.migrate.done``: the devices of that intent (by ``op_id``) become *migrated*, except those
  named in ``failures`` (*failed*; a retriable one is migrated again by a later intent);
- ``call.revert.done``: the intent's devices not in ``failures`` become *reverted*;
- ``devices.moved``: each ``[device, old, new]`` becomes *new* (verified, held, reverting, ...);
- ``wave.applying``: a marker where a wave starts.

After each event that changes a count, a point records three counts: *on zero trust* (migrated,
verified or deferred: switched and not rolled back), *verified* (passed its wave's gate) and
*reverted* (rolled back). Points at the same instant collapse into the last one.

Worked example: an intent for D1, D2 at 09:00, its done at 09:00 with ``failures {D2: ...}``, then
``devices.moved [[D1, migrated, verified]]`` at 21:00 gives points (09:00, on 1, verified 0,
reverted 0) and (21:00, on 1, verified 1, reverted 0).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from rollout.core.audit import Event

ON_ZERO_TRUST = frozenset({"migrated", "verified", "deferred"})
SERIES = ("on_zero_trust", "verified", "reverted")


@dataclass(frozen=True, slots=True)
class Point:
    at: str  # ISO 8601 time of the event
    on_zero_trust: int
    verified: int
    reverted: int

    def value(self, series: str) -> int:
        return int(getattr(self, series))


@dataclass(frozen=True, slots=True)
class Marker:
    at: str
    wave: int  # the wave's index


@dataclass(frozen=True, slots=True)
class Timeline:
    points: tuple[Point, ...]
    markers: tuple[Marker, ...]
    phases: dict[str, str]  # device -> phase after the last event (for checks against the store)
    last_at: str = ""  # the latest event time: the moment the report describes


def _bucket(phase: str | None) -> str | None:
    if phase == "verified":
        return "verified"
    if phase in ON_ZERO_TRUST:
        return "migrated"
    return "reverted" if phase == "reverted" else None


class _Replay:
    def __init__(self) -> None:
        self.phases: dict[str, str] = {}
        self.counts: Counter[str] = Counter()
        self.intents: dict[str, list[str]] = {}

    def move(self, device: str, new: str) -> None:
        old = _bucket(self.phases.get(device))
        if old:
            self.counts[old] -= 1
        self.phases[device] = new
        bucket = _bucket(new)
        if bucket:
            self.counts[bucket] += 1

    def apply(self, event: Event) -> None:
        data = event.data
        if event.kind in ("call.migrate.intent", "call.revert.intent"):
            self.intents[data["op_id"]] = list(data["devices"])
            if event.kind == "call.migrate.intent":
                for device in data["devices"]:
                    self.move(device, "migrating")
        elif event.kind in ("call.migrate.done", "call.revert.done"):
            failures = data.get("failures", {})
            ok, failed = ("migrated", "failed") if event.kind == "call.migrate.done" else ("reverted", None)
            for device in self.intents.pop(data["op_id"], []):
                if device not in failures:
                    self.move(device, ok)
                elif failed:
                    self.move(device, failed)
        elif event.kind == "devices.moved":
            for device, _old, new in data["devices"]:
                self.move(device, new)

    def point(self, at: str) -> Point:
        c = self.counts
        return Point(at, c["migrated"] + c["verified"], c["verified"], c["reverted"])


def migration_timeline(events: Iterable[Event]) -> Timeline:
    """Replay ``events`` (in log order) into counts over time (see the module docstring)."""
    replay = _Replay()
    points: list[Point] = []
    markers: list[Marker] = []
    last: dt.datetime | None = None
    for event in events:
        at = dt.datetime.fromisoformat(event.at)
        last = at if last is None or at > last else last
        if event.kind == "wave.applying":
            markers.append(Marker(event.at, int(event.data["wave"])))
            continue
        replay.apply(event)
        point = replay.point(event.at)
        previous = points[-1] if points else Point("", 0, 0, 0)
        if (point.on_zero_trust, point.verified, point.reverted) == (previous.on_zero_trust, previous.verified,
                                                                     previous.reverted):
            continue
        if points and points[-1].at == event.at:
            points[-1] = point
        else:
            points.append(point)
    return Timeline(tuple(points), tuple(markers), replay.phases, last.isoformat() if last else "")
