"""The DynamoDB store's replica: one store instance's copy of a rollout's rows, as of a commit.

A replica is brought up to date by applying the commit records after its ``seq`` (``apply_record``);
``DynamoView`` is the ``TxView`` a change set is built against. No I/O here: the reads and writes
are in ``rollout.store.dynamo_io``, the store in ``rollout.store.dynamo``.
"""

from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from rollout.core.device import Device
from rollout.core.model import Approval, DevicePhase, RolloutStatus, WavePhase
from rollout.errors import NotFoundError
from rollout.store.api import Intent, LeaseRow
from rollout.store.rows import status_from_row

KINDS = ("waves", "devices", "approvals", "issues", "decisions", "intents")


def bucket_of(device_id: str, buckets: int) -> int:
    return zlib.crc32(device_id.encode("utf-8")) % buckets


def approval_key(a: Approval) -> str:
    return hashlib.blake2b("\x1f".join((a.wave, a.wave_hash, a.by, a.role)).encode("utf-8"), digest_size=16).hexdigest()


@dataclass
class Replica:
    """This instance's copy of one rollout's rows, as of commit ``seq``."""

    head: dict[str, Any]
    seq: int
    waves: dict[int, dict[str, Any]] = field(default_factory=dict)
    devices: dict[str, dict[str, Any]] = field(default_factory=dict)
    approvals: dict[str, dict[str, Any]] = field(default_factory=dict)
    issues: dict[int, dict[str, Any]] = field(default_factory=dict)
    decisions: dict[int, dict[str, Any]] = field(default_factory=dict)
    intents: dict[str, dict[str, Any]] = field(default_factory=dict)
    buckets: dict[int, list[str]] = field(default_factory=dict)  # device bucket -> its devices
    inventory: dict[str, Device] | None = None
    plan: tuple[int, dict[str, Any]] | None = None

    def table(self, kind: str) -> dict[Any, dict[str, Any]]:
        return getattr(self, kind)  # type: ignore[no-any-return]

    def bucket_rows(self, bucket: int) -> dict[str, dict[str, Any]]:
        return {d: {k: v for k, v in self.devices[d].items() if k != "_v"} for d in self.buckets.get(bucket, [])}


class DynamoView:
    """``TxView`` over a replica."""

    def __init__(self, rollout_id: str, replica: Replica) -> None:
        self.rollout_id, self.replica = rollout_id, replica

    def status(self) -> RolloutStatus:
        return status_from_row(self.rollout_id, self.replica.head)

    def lease(self) -> LeaseRow | None:
        return lease_of(self.replica.head)

    def last_fence(self) -> int:
        return int(self.replica.head.get("last_fence") or 0)

    def next_issue_id(self) -> int:
        return int(self.replica.head.get("issue_max") or 0) + 1

    def wave_phase(self, index: int) -> WavePhase:
        if index not in self.replica.waves:
            raise NotFoundError(f"rollout {self.rollout_id} has no wave {index}")
        return WavePhase(self.replica.waves[index]["phase"])


def lease_of(head: dict[str, Any]) -> LeaseRow | None:
    if not head.get("lease_id"):
        return None
    return LeaseRow(head["lease_id"], head["lease_holder"], head["lease_host"], int(head["lease_pid"]),
                    float(head["lease_acquired_at"]), float(head["lease_expires_at"]), int(head["lease_fence"]))


def intent_of(row: dict[str, Any]) -> Intent:
    budget = row.get("max_errors")
    return Intent(row["op_id"], row["verb"], int(row["wave"]), tuple(json.loads(row["device_ids"])),
                  None if budget is None else int(budget))


def apply_record(replica: Replica, record: dict[str, Any]) -> None:
    """Bring the replica's rows to commit ``record['seq']`` (a row already newer is kept)."""
    seq = int(record["seq"])
    buckets = int(replica.head.get("buckets") or 1)
    for kind in KINDS:
        rows = replica.table(kind)
        for name, row in record[kind].items():
            key: Any = int(name) if kind in ("waves", "issues", "decisions") else name
            if int(rows.get(key, {}).get("_v") or 0) < seq:
                rows[key] = {**row, "_v": seq}
    for device_id in record["devices"]:
        members = replica.buckets.setdefault(bucket_of(device_id, buckets), [])
        if device_id not in members:
            members.append(device_id)


def phase_counts(rows: Iterable[dict[str, Any]]) -> dict[DevicePhase, int]:
    """Devices per phase, from device rows."""
    counts: dict[DevicePhase, int] = {}
    for row in rows:
        phase = DevicePhase(row["phase"])
        counts[phase] = counts.get(phase, 0) + 1
    return counts


def wave_phase_counts(rows: Iterable[dict[str, Any]]) -> dict[int, dict[DevicePhase, int]]:
    """Devices per wave and phase, from device rows."""
    counts: dict[int, dict[DevicePhase, int]] = {}
    for row in rows:
        per, phase = counts.setdefault(int(row["wave"]), {}), DevicePhase(row["phase"])
        per[phase] = per.get(phase, 0) + 1
    return counts


def ids_in_phases(devices: dict[str, dict[str, Any]], phases: Iterable[DevicePhase]) -> list[str]:
    wanted = {p.value for p in phases}
    return [device_id for device_id, row in devices.items() if row["phase"] in wanted]
