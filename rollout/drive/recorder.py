"""Writing what happened: the engine's decisions, backend intents and results, and human commands.

Every function here is one change set (``rollout.store.api.Changes``) that changes state and appends
its audit event together, applied atomically by whichever store holds the rollout. Phase changes
are compare-and-set (``RowChange.expect``): if a human command changed a wave or device since the
driver read it, the driver's write fails with ConflictError, nothing is written, and the driver
reads again and decides again.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Sequence
from typing import Any

from rollout.core.decision import Decision
from rollout.core.model import (
    DevicePhase,
    Issue,
    IssueStatus,
    Severity,
    StepResult,
    WavePhase,
    check_device_move,
)
from rollout.store.api import (
    Changes,
    ConflictError,
    Fence,
    Intent,
    RowChange,
    StateStore,
    TxView,
)

__all__ = ["ConflictError", "Intent", "apply_decision", "finish_intent", "issue_changes",
           "open_intents", "record_intent"]

D = DevicePhase


def move_device(changes: Changes, device_id: str, old: DevicePhase, new: DevicePhase, now: dt.datetime,
                fields: dict[str, Any]) -> None:
    """A device's phase change, only if it is still ``old``."""
    changes.devices.append(RowChange(device_id, {"phase": new, "phase_since": now, **fields}, {"phase": old}))


def apply_decision(store: StateStore, rollout_id: str, fence: Fence | None, decision: Decision,
                   now: dt.datetime, actor: str) -> None:
    """Commit one tick's decision: wave and device moves, issues, status, gate records, events."""

    def build(view: TxView) -> Changes:
        ch = Changes()
        for move in decision.wave_moves:
            fields: dict[str, Any] = {"phase": move.new, "phase_since": now}
            if "bake_started" in move.fields:
                fields["bake_started"] = move.fields["bake_started"]
            ch.waves.append(RowChange(move.index, fields, {"phase": move.old}))
            ch.event(now, actor, "wave." + move.new.value, {"wave": move.index, "from": move.old.value,
                                                            "reason": move.reason})
        for index, values in decision.wave_fields.items():
            ch.waves.append(RowChange(index, dict(values)))
        for dmove in decision.device_moves:
            move_device(ch, dmove.device_id, dmove.old, dmove.new, now, dict(dmove.fields))
        if decision.device_moves:
            counts = Counter(f"{m.old.value}->{m.new.value}" for m in decision.device_moves)
            ch.event(now, actor, "devices.moved",
                     {"counts": dict(sorted(counts.items())),
                      "devices": [[m.device_id, m.old.value, m.new.value] for m in decision.device_moves]})
        next_id = view.next_issue_id()
        for offset, issue in enumerate(decision.new_issues):
            issue_changes(ch, next_id + offset, issue.title, issue.selector, issue.severity.value,
                          issue.reported_during, actor, now, auto=True)
        if decision.status:
            ch.rollout.update(decision.status)
            ch.event(now, actor, "rollout.status", dict(decision.status))
        for wave, record in decision.records:
            ch.decisions.append((wave, record))
            ch.event(now, actor, "gate.decision",
                     {"wave": wave, "verdict": record["gate"]["verdict"], "wave_hash": record["wave_hash"]})
        return ch

    store.transact(rollout_id, build, fence)


def issue_changes(ch: Changes, issue_id: int, title: str, selector: str, severity: str | None, during: str | None,
                  actor: str, now: dt.datetime, auto: bool = False) -> None:
    """Add a new issue (triaged at once when it has a severity) and its ``issue.reported`` event."""
    ch.new_issues.append(Issue(issue_id, title, selector, Severity(severity) if severity else None, IssueStatus.OPEN,
                               during, actor, now, actor if severity else None, now if severity else None, auto))
    ch.event(now, actor, "issue.reported", {"id": issue_id, "title": title, "selector": selector,
                                            "severity": severity, "during": during, "auto": auto})


def record_intent(store: StateStore, rollout_id: str, fence: Fence | None, intent: Intent, now: dt.datetime,
                  actor: str) -> None:
    """Before a backend call: the intent, and for a migration its devices pending -> migrating.

    A migration is refused (ConflictError, nothing written) once the rollout was halted or its wave
    left ``applying`` since the tick decided it: a person's rollback wins over a batch not yet sent."""

    def build(view: TxView) -> Changes:
        if intent.verb == "migrate" and (view.status().halted or view.wave_phase(intent.wave) != WavePhase.APPLYING):
            raise ConflictError(f"wave {intent.wave} is no longer applying (or the rollout was halted): its next "
                                "batch is not sent")
        ch = Changes(new_intents=[(intent, now)])
        if intent.verb == "migrate":
            for device_id in intent.device_ids:
                check_device_move(device_id, D.PENDING, D.MIGRATING)
                move_device(ch, device_id, D.PENDING, D.MIGRATING, now, {})
        ch.event(now, actor, f"call.{intent.verb}.intent",
                 {"op_id": intent.op_id, "wave": intent.wave, "devices": list(intent.device_ids)})
        return ch

    store.transact(rollout_id, build, fence)


def finish_intent(store: StateStore, rollout_id: str, fence: Fence | None, intent: Intent,
                  results: Sequence[StepResult], now: dt.datetime, actor: str, *, recorded: bool = True) -> None:
    """After a backend call: each device's outcome, and the intent done (``recorded=False``: no intent row)."""

    def build(view: TxView) -> Changes:
        ch = Changes()
        start = D.MIGRATING if recorded else D.PENDING
        for r in results:
            if intent.verb == "migrate":
                new = D.MIGRATED if r.ok else (D.PENDING if r.retriable else D.FAILED)
                fields: dict[str, Any] = {"steps_done": r.steps_done, "error": r.error, "ref": r.ref}
                if r.ok:
                    fields["migrated_at"] = r.at
                move_device(ch, r.device_id, start, new, now, fields)
            elif r.ok:
                move_device(ch, r.device_id, D.REVERTING, D.REVERTED, now, {"steps_done": 0, "ref": r.ref})
            else:
                ch.devices.append(RowChange(r.device_id, {"steps_done": r.steps_done, "ref": r.ref,
                                                          "error": f"revert failed, will retry: {r.error}"}))
        if recorded:
            ch.done_intents.append((intent.op_id, now))
        ok = sum(1 for r in results if r.ok)
        ch.event(now, actor, f"call.{intent.verb}.done",
                 {"op_id": intent.op_id, "ok": ok, "failed": len(results) - ok,
                  "failures": {r.device_id: r.error for r in results if not r.ok}})
        return ch

    store.transact(rollout_id, build, fence)


def open_intents(store: StateStore, rollout_id: str) -> list[Intent]:
    return store.open_intents(rollout_id)
