"""Turning a change set into one DynamoDB commit: checked against the replica, rows in full.

``plan_commit`` applies the changes in order to copies of the replica's rows (so a second change
to the same row sees the first, as in SQL), checks every compare-and-set on the way
(``ConflictError``, nothing written), numbers the events (hash chain), issues and decisions, and
returns the HEAD attributes to set and the commit record: the *full* new rows, so that anyone can
materialize the commit from the record alone.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from rollout.core.audit import seal_event
from rollout.core.model import Approval
from rollout.errors import NotFoundError
from rollout.store.api import UNCHANGED, Changes, ConflictError, RowChange
from rollout.store.dynamo_replica import Replica
from rollout.store.rows import approval_to_row, encode, encode_fields, issue_to_row

LEASE_ATTRS = ("lease_id", "lease_holder", "lease_host", "lease_pid", "lease_acquired_at", "lease_expires_at",
               "lease_fence")


@dataclass
class CommitPlan:
    seq: int
    head: dict[str, Any] = field(default_factory=dict)
    removed: tuple[str, ...] = ()
    record: dict[str, Any] | None = None

    @property
    def empty(self) -> bool:
        return not self.head and not self.removed and self.record is None


class _Rows:
    """Copies of the replica's rows that the changes of one commit touch, in order."""

    def __init__(self, replica: Replica) -> None:
        self.replica = replica
        self.touched: dict[str, dict[Any, dict[str, Any]]] = {k: {} for k in
                                                               ("waves", "devices", "approvals", "issues", "decisions",
                                                                "intents")}

    def get(self, kind: str, key: Any) -> dict[str, Any] | None:
        if key in self.touched[kind]:
            return self.touched[kind][key]
        row = self.replica.table(kind).get(key)
        if row is None:
            return None
        copy = {k: v for k, v in row.items() if k not in ("pk", "sk", "_v")}
        self.touched[kind][key] = copy
        return copy

    def put(self, kind: str, key: Any, row: dict[str, Any]) -> None:
        self.touched[kind][key] = row

    def update(self, kind: str, what: str, change: RowChange) -> None:
        row = self.get(kind, change.key)
        if row is None:
            raise NotFoundError(f"{what} {change.key} does not exist")
        for name, expected in change.expect.items():
            if row.get(name) != encode(expected):
                raise ConflictError(f"{what} {change.key} is no longer {encode(expected)}")
        row.update(encode_fields(change.fields))


def plan_commit(rollout_id: str, replica: Replica, changes: Changes,
                approval_key: Callable[[Approval], str]) -> CommitPlan:
    """The commit that ``changes`` make on top of ``replica`` (raises ConflictError / NotFoundError)."""
    head = replica.head
    plan = CommitPlan(replica.seq + 1)
    rows = _Rows(replica)
    for change in changes.waves:
        rows.update("waves", "wave", change)
    for change in changes.devices:
        rows.update("devices", "device", change)
    n = int(head.get("approval_n") or 0)
    for approval in changes.approvals:
        key = approval_key(approval)
        if rows.get("approvals", key) is None:
            n += 1
            rows.put("approvals", key, {**approval_to_row(approval), "n": n})
    issue_max = int(head.get("issue_max") or 0)
    for issue in changes.new_issues:
        if rows.get("issues", issue.id) is not None:
            raise ConflictError(f"issue {issue.id} exists already")
        rows.put("issues", issue.id, issue_to_row(issue))
        issue_max = max(issue_max, issue.id)
    for change in changes.issues:
        rows.update("issues", "issue", change)
    decision_max = int(head.get("decision_max") or 0)
    for wave, record in changes.decisions:
        decision_max += 1
        rows.put("decisions", decision_max, {"wave": wave, "record": json.dumps(record, ensure_ascii=False,
                                                                                 sort_keys=True)})
    intent_n = int(head.get("intent_n") or 0)
    for intent, at in changes.new_intents:
        intent_n += 1
        rows.put("intents", intent.op_id, {"op_id": intent.op_id, "verb": intent.verb, "wave": intent.wave,
                                           "device_ids": json.dumps(list(intent.device_ids)), "state": "open",
                                           "created_at": encode(at), "done_at": None, "n": intent_n,
                                           "max_errors": intent.max_errors})
    for op_id, at in changes.done_intents:
        row = rows.get("intents", op_id)
        if row is not None:
            row.update({"state": "done", "done_at": encode(at)})
    events = _events(head, changes)
    _head_sets(plan, replica, changes)
    if events or any(rows.touched.values()) or "plan_json" in changes.rollout:
        plan.record = {"seq": plan.seq, **{k: {str(key): row for key, row in v.items()} for k, v in rows.touched.items()},
                       "events": events, "plan": changes.rollout.get("plan_json")}
        plan.head.update({"seq": plan.seq, "approval_n": n, "issue_max": issue_max, "decision_max": decision_max,
                          "intent_n": intent_n})
        if events:
            plan.head.update({"event_count": events[-1]["seq"], "head_hash": events[-1]["hash"]})
    return plan


def _events(head: dict[str, Any], changes: Changes) -> list[dict[str, Any]]:
    """The change set's events, numbered and chained from the rollout's head."""
    seq, prev = int(head.get("event_count") or 0), str(head.get("head_hash") or "")
    out = []
    for e in changes.events:
        seq += 1
        stamp = e.at.isoformat()
        stored, digest = seal_event(prev, seq, stamp, e.actor, e.kind, dict(e.data))
        out.append({"seq": seq, "at": stamp, "actor": e.actor, "kind": e.kind, "data": stored, "prev_hash": prev,
                    "hash": digest})
        prev = digest
    return out


def _head_sets(plan: CommitPlan, replica: Replica, changes: Changes) -> None:
    for name, value in changes.rollout.items():
        if name == "plan_json":
            plan.head["plan_ref"] = plan.seq
            plan.head["replans"] = int(replica.head.get("replans") or 0) + 1
        else:
            plan.head[name] = encode(value)
    if changes.last_fence is not None:
        plan.head["last_fence"] = changes.last_fence
    if changes.lease is UNCHANGED:
        return
    if changes.lease is None:
        plan.removed = LEASE_ATTRS
        return
    lease = changes.lease
    plan.head.update({"lease_id": lease.lease_id, "lease_holder": lease.holder, "lease_host": lease.host,
                      "lease_pid": lease.pid, "lease_acquired_at": lease.acquired_at,
                      "lease_expires_at": lease.expires_at, "lease_fence": lease.fence})
