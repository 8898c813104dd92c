"""The hash-chained audit log: any edit, deletion, reordering or truncation of a 10,000-event log is
detected, and ``verify_audit`` names the first broken entry."""

from __future__ import annotations

import datetime as dt
import json
import random
import shutil
import sqlite3
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from rollout.core.audit import event_hash
from rollout.store.sqlite import SqliteStore
from tests.rollout_builders import T0, fresh_store, run_rollout

EVENTS = 10_000
CASES = 120


@dataclass(frozen=True)
class Built:
    path: Path
    rollout_id: str


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> Built:
    """A state file whose rollout has exactly EVENTS events, appended through the store in 4 transactions."""
    path = tmp_path_factory.mktemp("audit") / "state.db"
    store, rid = fresh_store(path, n=60)
    have = store.verify_audit(rid).events
    for chunk in range(4):
        with store.write() as db:
            for i in range(have + chunk * 2500, min(EVENTS, have + (chunk + 1) * 2500)):
                store.append_event(db, rid, T0 + dt.timedelta(seconds=i), f"user-{i % 7}", "note.added",
                                   {"n": i, "text": f"承認メモ {i}", "devices": [f"D{i:07d}"]})
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    assert store.verify_audit(rid).events == EVENTS
    store.close()
    return Built(path, rid)


# Each tamper edits the copy's events table by SQL and returns the seq of the first broken entry.
Tamper = Callable[[sqlite3.Connection, random.Random], int]


def _edit(column: str, value: Callable[[str], str]) -> Tamper:
    def tamper(db: sqlite3.Connection, rng: random.Random) -> int:
        seq = rng.randint(1, EVENTS)
        old = db.execute(f"SELECT {column} FROM events WHERE seq=?", (seq,)).fetchone()[0]
        db.execute(f"UPDATE events SET {column}=? WHERE seq=?", (value(old), seq))
        return seq
    return tamper


def _data(old: str) -> str:
    data = json.loads(old)
    data["approved"] = True if "approved" not in data else not data["approved"]
    return json.dumps(data, ensure_ascii=False, sort_keys=True)


def _edit_and_rehash(db: sqlite3.Connection, rng: random.Random) -> int:
    """An edit that also recomputes the event's own hash: the next event's link still gives it away."""
    seq = rng.randint(1, EVENTS - 1)
    prev, at, actor, kind, data = db.execute("SELECT prev_hash, at, actor, kind, data FROM events WHERE seq=?",
                                             (seq,)).fetchone()
    forged = json.loads(_data(data))
    db.execute("UPDATE events SET data=?, hash=? WHERE seq=?",
               (json.dumps(forged), event_hash(prev, seq, at, actor, kind, forged), seq))
    return seq


def _delete(db: sqlite3.Connection, rng: random.Random) -> int:
    seq = rng.randint(1, EVENTS - 1)
    db.execute("DELETE FROM events WHERE seq=?", (seq,))
    return seq


def _swap_seq(db: sqlite3.Connection, rng: random.Random) -> int:
    a, b = sorted(rng.sample(range(1, EVENTS + 1), 2))
    db.execute("UPDATE events SET seq = CASE seq WHEN ? THEN ? ELSE ? END WHERE seq IN (?, ?)", (a, b, a, a, b))
    return a


def _swap_rows(db: sqlite3.Connection, rng: random.Random) -> int:
    """Two events change places in the file, each keeping (or not) its own seq number."""
    a, b = sorted(rng.sample(range(1, EVENTS + 1), 2))
    keep_seq = rng.random() < 0.5
    columns = ["at", "actor", "kind", "data", "prev_hash", "hash"] + ([] if keep_seq else ["seq"])
    rows = {s: db.execute(f"SELECT {', '.join(columns)} FROM events WHERE seq=?", (s,)).fetchone() for s in (a, b)}
    ids = {s: db.execute("SELECT rowid FROM events WHERE seq=?", (s,)).fetchone()[0] for s in (a, b)}
    sets = ", ".join(f"{c}=?" for c in columns)
    db.execute(f"UPDATE events SET {sets} WHERE rowid=?", (*rows[b], ids[a]))
    db.execute(f"UPDATE events SET {sets} WHERE rowid=?", (*rows[a], ids[b]))
    return a


def _truncate(db: sqlite3.Connection, rng: random.Random) -> int:
    keep = rng.randint(0, EVENTS - 1)
    db.execute("DELETE FROM events WHERE seq>?", (keep,))
    return keep + 1


TAMPERS: dict[str, Tamper] = {
    "edit data": _edit("data", _data),
    "edit actor": _edit("actor", lambda old: old + "-admin"),
    "edit at": _edit("at", lambda old: (dt.datetime.fromisoformat(old) - dt.timedelta(days=1)).isoformat()),
    "edit kind": _edit("kind", lambda old: "approval.added"),
    "edit hash": _edit("hash", lambda old: old[::-1]),
    "edit and rehash": _edit_and_rehash,
    "delete": _delete,
    "swap seq": _swap_seq,
    "swap rows": _swap_rows,
    "truncate": _truncate,
}


def tampered_copy(built: Built, directory: Path, name: str, seed: int) -> tuple[Path, int]:
    path = directory / "tampered.db"
    shutil.copyfile(built.path, path)
    db = sqlite3.connect(path, isolation_level=None)
    try:
        first_broken = TAMPERS[name](db, random.Random(seed))
    finally:
        db.close()
    return path, first_broken


@pytest.mark.parametrize("case", range(CASES))
def test_any_tampering_is_detected_at_its_first_broken_entry(built: Built, tmp_path: Path, case: int) -> None:
    name = list(TAMPERS)[case % len(TAMPERS)]
    path, first_broken = tampered_copy(built, tmp_path, name, case)
    store = SqliteStore(path)
    report = store.verify_audit(built.rollout_id)
    assert not report.ok, f"{name} (seed {case}) went unnoticed"
    assert report.first_broken == first_broken, f"{name} (seed {case}): {report.problem}"


def test_the_untouched_log_verifies(built: Built, tmp_path: Path) -> None:
    path = tmp_path / "copy.db"
    shutil.copyfile(built.path, path)
    report = SqliteStore(path).verify_audit(built.rollout_id)
    assert (report.ok, report.events, report.first_broken) == (True, EVENTS, None)


def test_audit_verify_command_exit_codes(built: Built, tmp_path: Path) -> None:
    good = run_rollout("audit", "verify", "--state", f"sqlite:{built.path}")
    assert good.returncode == 0, good.stderr
    assert f"{EVENTS:,} events verified" in good.stdout
    path, first_broken = tampered_copy(built, tmp_path, "edit data", 2027)
    bad = run_rollout("audit", "verify", "--state", f"sqlite:{path}")
    assert bad.returncode == 1
    assert f"BROKEN at event {first_broken}:" in bad.stderr
