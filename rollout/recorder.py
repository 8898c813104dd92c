"""Writing what happened: the engine's decisions, backend intents and results, and human commands.

Every function here is one transaction that changes state and appends its audit event together.
Phase changes are compare-and-set (``UPDATE ... WHERE phase = old``): if a human command changed a
wave or device since the driver read it, the driver's write fails with ConflictError, nothing is
written, and the driver reads again and decides again.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from rollout.engine import Decision
from rollout.errors import RolloutError
from rollout.model import DevicePhase, check_device_move
from rollout.store import Fence, SqliteStore, iso

D = DevicePhase


class ConflictError(RolloutError):
    """The state changed under the writer (another command ran); read again and decide again."""


@dataclass(frozen=True, slots=True)
class StepResult:
    """One device's outcome of a backend call."""

    device_id: str
    ok: bool
    steps_done: int  # the device's step mask after the call
    at: dt.datetime
    error: str = ""
    retriable: bool = False  # throttling and the like: the device goes back to pending, not to failed


@dataclass(frozen=True, slots=True)
class Intent:
    op_id: str
    verb: str
    wave: int
    device_ids: tuple[str, ...]


def _move_device(db: sqlite3.Connection, rollout_id: str, device_id: str, old: DevicePhase, new: DevicePhase,
                 now: dt.datetime, fields: dict[str, Any]) -> None:
    sets, args = ["phase=?", "phase_since=?"], [new.value, iso(now)]
    for name in ("wave", "error", "steps_done"):
        if name in fields:
            sets.append(f"{name}=?")
            args.append(fields[name])
    if "migrated_at" in fields:
        sets.append("migrated_at=?")
        args.append(iso(fields["migrated_at"]))
    changed = db.execute(f"UPDATE devices SET {', '.join(sets)} WHERE rollout_id=? AND device_id=? AND phase=?",
                         (*args, rollout_id, device_id, old.value)).rowcount
    if not changed:
        raise ConflictError(f"device {device_id} is no longer {old}")


def apply_decision(store: SqliteStore, rollout_id: str, fence: Fence | None, decision: Decision,
                   now: dt.datetime, actor: str) -> None:
    """Commit one tick's decision: wave and device moves, issues, status, gate records, events."""
    with store.write(rollout_id, fence) as db:
        for move in decision.wave_moves:
            sets, args = ["phase=?", "phase_since=?"], [move.new.value, iso(now)]
            if "bake_started" in move.fields:
                sets.append("bake_started=?")
                args.append(iso(move.fields["bake_started"]))
            changed = db.execute(f"UPDATE waves SET {', '.join(sets)} WHERE rollout_id=? AND idx=? AND phase=?",
                                 (*args, rollout_id, move.index, move.old.value)).rowcount
            if not changed:
                raise ConflictError(f"wave {move.index} is no longer {move.old}")
            store.append_event(db, rollout_id, now, actor, "wave." + move.new.value,
                               {"wave": move.index, "from": move.old.value, "reason": move.reason})
        for index, fields in decision.wave_fields.items():
            for name, value in fields.items():
                db.execute(f"UPDATE waves SET {name}=? WHERE rollout_id=? AND idx=?", (value, rollout_id, index))
        for dmove in decision.device_moves:
            _move_device(db, rollout_id, dmove.device_id, dmove.old, dmove.new, now, dict(dmove.fields))
        if decision.device_moves:
            counts = Counter(f"{m.old.value}->{m.new.value}" for m in decision.device_moves)
            store.append_event(db, rollout_id, now, actor, "devices.moved",
                               {"counts": dict(sorted(counts.items())),
                                "devices": [[m.device_id, m.old.value, m.new.value] for m in decision.device_moves]})
        for issue in decision.new_issues:
            insert_issue(store, db, rollout_id, issue.title, issue.selector, issue.severity.value,
                          issue.reported_during, actor, now, auto=True)
        _apply_status(store, db, rollout_id, decision.status, now, actor)
        for wave, record in decision.records:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM decisions WHERE rollout_id=?",
                             (rollout_id,)).fetchone()[0]
            db.execute("INSERT INTO decisions VALUES (?,?,?,?)",
                       (rollout_id, seq, wave, json.dumps(record, ensure_ascii=False, sort_keys=True)))
            store.append_event(db, rollout_id, now, actor, "gate.decision",
                               {"wave": wave, "verdict": record["gate"]["verdict"], "wave_hash": record["wave_hash"]})


def _apply_status(store: SqliteStore, db: sqlite3.Connection, rollout_id: str, status: dict[str, Any],
                  now: dt.datetime, actor: str) -> None:
    if not status:
        return
    for name, value in status.items():
        db.execute(f"UPDATE rollouts SET {name}=? WHERE id=?", (int(value) if isinstance(value, bool) else value,
                                                                rollout_id))
    store.append_event(db, rollout_id, now, actor, "rollout.status", dict(status))


def insert_issue(store: SqliteStore, db: sqlite3.Connection, rollout_id: str, title: str, selector: str,
                  severity: str | None, during: str | None, actor: str, now: dt.datetime, auto: bool = False) -> int:
    issue_id = db.execute("SELECT COALESCE(MAX(id), 0) + 1 FROM issues WHERE rollout_id=?",
                          (rollout_id,)).fetchone()[0]
    db.execute("INSERT INTO issues (rollout_id, id, title, selector, severity, status, reported_during, reported_by, "
               "reported_at, decided_by, decided_at, auto) VALUES (?,?,?,?,?,?,?,?,?,?,?,?)",
               (rollout_id, issue_id, title, selector, severity, "open", during, actor, iso(now),
                actor if severity else None, iso(now) if severity else None, int(auto)))
    store.append_event(db, rollout_id, now, actor, "issue.reported",
                       {"id": issue_id, "title": title, "selector": selector, "severity": severity,
                        "during": during, "auto": auto})
    return int(issue_id)


def record_intent(store: SqliteStore, rollout_id: str, fence: Fence | None, intent: Intent, now: dt.datetime,
                  actor: str) -> None:
    """Before a backend call: the intent, and for a migration its devices pending -> migrating."""
    with store.write(rollout_id, fence) as db:
        db.execute("INSERT INTO intents VALUES (?,?,?,?,?,?,?,NULL)",
                   (rollout_id, intent.op_id, intent.verb, intent.wave, json.dumps(list(intent.device_ids)),
                    "open", iso(now)))
        if intent.verb == "migrate":
            for device_id in intent.device_ids:
                check_device_move(device_id, D.PENDING, D.MIGRATING)
                _move_device(db, rollout_id, device_id, D.PENDING, D.MIGRATING, now, {})
        store.append_event(db, rollout_id, now, actor, f"call.{intent.verb}.intent",
                           {"op_id": intent.op_id, "wave": intent.wave, "devices": list(intent.device_ids)})


def finish_intent(store: SqliteStore, rollout_id: str, fence: Fence | None, intent: Intent,
                  results: Sequence[StepResult], now: dt.datetime, actor: str, *, recorded: bool = True) -> None:
    """After a backend call: each device's outcome, and the intent done (``recorded=False``: no intent row)."""
    with store.write(rollout_id, fence) as db:
        start = D.MIGRATING if recorded else D.PENDING
        for r in results:
            if intent.verb == "migrate":
                new = D.MIGRATED if r.ok else (D.PENDING if r.retriable else D.FAILED)
                fields: dict[str, Any] = {"steps_done": r.steps_done, "error": r.error}
                if r.ok:
                    fields["migrated_at"] = r.at
                _move_device(db, rollout_id, r.device_id, start, new, now, fields)
            elif r.ok:
                row = db.execute("SELECT error FROM devices WHERE rollout_id=? AND device_id=?",
                                 (rollout_id, r.device_id)).fetchone()
                _move_device(db, rollout_id, r.device_id, D.REVERTING, D.REVERTED, now,
                             {"steps_done": 0, "error": row["error"]})
            else:
                db.execute("UPDATE devices SET steps_done=?, error=? WHERE rollout_id=? AND device_id=?",
                           (r.steps_done, f"revert failed, will retry: {r.error}", rollout_id, r.device_id))
        if recorded:
            db.execute("UPDATE intents SET state='done', done_at=? WHERE op_id=?", (iso(now), intent.op_id))
        ok = sum(1 for r in results if r.ok)
        store.append_event(db, rollout_id, now, actor, f"call.{intent.verb}.done",
                           {"op_id": intent.op_id, "ok": ok, "failed": len(results) - ok,
                            "failures": {r.device_id: r.error for r in results if not r.ok}})


def open_intents(store: SqliteStore, rollout_id: str) -> list[Intent]:
    return [Intent(r["op_id"], r["verb"], r["wave"], tuple(json.loads(r["device_ids"])))
            for r in store.db.execute("SELECT * FROM intents WHERE rollout_id=? AND state='open' ORDER BY rowid",
                                      (rollout_id,))]
