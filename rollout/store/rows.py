"""Rows as every store keeps them: one encoding of values, one decoder per record type.

A row is a mapping from column name to an encoded value: ISO 8601 strings for times, JSON text
for lists and dicts, enum values as strings, bools as bools (SQLite stores them as 0/1). The
SQLite store's columns and the DynamoDB store's attributes have the same names, so both read
rows back through these decoders.
"""

from __future__ import annotations

import datetime as dt
import functools
import json
from collections.abc import Mapping
from enum import Enum
from typing import Any, Protocol

from rollout.core.model import (
    Approval,
    DevicePhase,
    DeviceState,
    Issue,
    IssueStatus,
    RolloutStatus,
    Severity,
    WavePhase,
    WaveState,
)

_parse_time = functools.lru_cache(maxsize=65536)(dt.datetime.fromisoformat)
DEVICE_PHASES = {p.value: p for p in DevicePhase}


class Row(Protocol):
    """A stored row: ``sqlite3.Row`` or a dict with every column present."""

    def __getitem__(self, key: str, /) -> Any: ...


def utc(value: str | None) -> dt.datetime | None:
    """Parse a stored timestamp; cached, since a batch of devices shares its timestamps."""
    return _parse_time(value) if value else None


def encode(value: Any) -> Any:
    """A Python value as a store keeps it."""
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dt.datetime):
        return value.isoformat()
    if isinstance(value, (dict, list, tuple)):
        return json.dumps(value, ensure_ascii=False)
    return value


def encode_fields(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {name: encode(value) for name, value in fields.items()}


def status_from_row(rollout_id: str, r: Row) -> RolloutStatus:
    waived = _optional(r, "duties_waived")
    return RolloutStatus(rollout_id, r["plan_hash"], r["started_by"], utc(r["started_at"]) or dt.datetime.min,
                         bool(r["separation_of_duties"]), bool(r["paused"]), r["pause_reason"], bool(r["halted"]),
                         r["halt_reason"], duties_waived=json.loads(waived) if waived else None)


def _optional(r: Row, key: str) -> Any:
    """A field a row written by an older version may lack (a DynamoDB item; SQLite adds defaults)."""
    try:
        return r[key]
    except (KeyError, IndexError):
        return None


def wave_from_row(r: Row) -> WaveState:
    return WaveState(int(r["idx"]), r["name"], r["hash"], WavePhase(r["phase"]),
                     utc(r["phase_since"]) or dt.datetime.min, tuple(json.loads(r["approvals_required"])),
                     int(r["bake_seconds"]), json.loads(r["gates"]), bool(r["canary"]), utc(r["bake_started"]),
                     int(r["consecutive_errors"] or 0), r["last_verdict"])


def wave_to_row(w: WaveState) -> dict[str, Any]:
    return encode_fields({"idx": w.index, "name": w.name, "hash": w.hash, "phase": w.phase,
                          "phase_since": w.phase_since, "approvals_required": list(w.approvals_required),
                          "bake_seconds": w.bake_seconds, "gates": dict(w.gates), "canary": w.canary,
                          "bake_started": w.bake_started, "consecutive_errors": w.consecutive_errors,
                          "last_verdict": w.last_verdict})


def device_from_row(device_id: str, r: Row) -> DeviceState:
    return DeviceState(device_id, int(r["wave"]), DEVICE_PHASES[r["phase"]], utc(r["phase_since"]) or dt.datetime.min,
                       utc(r["migrated_at"]), int(r["steps_done"] or 0), r["error"] or "",
                       r["ref"] or "")


def device_to_row(d: DeviceState) -> dict[str, Any]:
    return encode_fields({"wave": d.wave, "phase": d.phase, "phase_since": d.phase_since,
                          "migrated_at": d.migrated_at, "steps_done": d.steps_done, "error": d.error, "ref": d.ref})


def issue_from_row(r: Row) -> Issue:
    return Issue(int(r["id"]), r["title"], r["selector"], Severity(r["severity"]) if r["severity"] else None,
                 IssueStatus(r["status"]), r["reported_during"], r["reported_by"],
                 utc(r["reported_at"]) or dt.datetime.min, r["decided_by"], utc(r["decided_at"]), bool(r["auto"]))


def issue_to_row(i: Issue) -> dict[str, Any]:
    return encode_fields({"id": i.id, "title": i.title, "selector": i.selector, "severity": i.severity,
                          "status": i.status, "reported_during": i.reported_during, "reported_by": i.reported_by,
                          "reported_at": i.reported_at, "decided_by": i.decided_by, "decided_at": i.decided_at,
                          "auto": i.auto})


def approval_from_row(r: Row) -> Approval:
    return Approval(r["wave"], r["wave_hash"], r["by_whom"], r["role"], utc(r["at"]) or dt.datetime.min, r["comment"])


def approval_to_row(a: Approval) -> dict[str, Any]:
    return encode_fields({"wave": a.wave, "wave_hash": a.wave_hash, "by_whom": a.by, "role": a.role, "at": a.at,
                          "comment": a.comment})
