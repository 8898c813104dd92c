"""One process of the contention harness (``tests/test_contention.py``):
``python -m tests.contention_worker ROLE NAME STATE ROLLOUT SEED STOPFILE``.

- ``driver``: drives the rollout (on ``CONTENTION_STATE`` if set: the same store, other options) in simulated time with the simulator recorded with it, until it
  completes or waits for a person (exit 3).
- ``operator``: until STOPFILE exists, each round opens a fresh store (as every CLI command does)
  and acts: approves waves that miss its role, triages untriaged issues, reports issues, changes
  the severity or status of others, resumes held waves.
- ``reader``: until STOPFILE exists, verifies the audit log from a fresh store; writes every
  failed verify to ``<STOPFILE>.<NAME>.alarms``.

``CONTENTION_ROW_FAULTS=P`` makes each row write after the commit point fail with probability P
(the commit record and HEAD still land); ``ROLLOUT_FAULT_KILL_AT=store_committed:N`` kills the
process right after its N-th commit point.
"""

from __future__ import annotations

import os
import random
import sys
import time
from pathlib import Path
from typing import Any

from rollout.core.model import WavePhase
from rollout.errors import AwaitingHumanError, InputError, NotFoundError, StateStoreError
from rollout.store.api import ConflictError, StateStore
from rollout.store.factory import open_store

PACE = 0.25
ROLES = {"operator-pm": "pm", "operator-security": "security"}


def inject_row_faults(store: StateStore, rng: random.Random) -> None:
    probability = float(os.environ.get("CONTENTION_ROW_FAULTS") or 0)
    client = getattr(store, "client", None)
    if not probability or client is None:
        return
    from botocore.exceptions import ClientError

    def refuse(params: dict[str, Any], **kwargs: Any) -> None:
        if "<= :k" in str(params.get("ConditionExpression", "")) and rng.random() < probability:
            raise ClientError({"Error": {"Code": "InternalServerError", "Message": "injected"}}, "PutItem")

    client.meta.events.register("before-parameter-build.dynamodb.PutItem", refuse)


def fresh(state: str, rng: random.Random) -> StateStore:
    store = open_store(state)
    inject_row_faults(store, rng)
    return store


def drive_once(state: str, rollout_id: str, name: str, rng: random.Random) -> int:
    from rollout.backends.factory import open_backend
    from rollout.drive.loop import DriveOptions, drive

    store = fresh(state, rng)
    backend = open_backend(store, rollout_id)
    try:
        drive(store, rollout_id, backend, name, DriveOptions(simulated=True, lease_ttl=30.0))
    except AwaitingHumanError:
        return 3
    finally:
        backend.close()
        store.close()
    return 0


def operate_once(store: StateStore, rollout_id: str, name: str, rng: random.Random) -> None:
    from rollout.drive.operations import add_issue, approve, resume, set_issue

    now = store.last_event_time(rollout_id)
    role = ROLES.get(name)
    waves = store.waves(rollout_id)
    if role is not None:
        approved = {(a.wave, a.wave_hash, a.role) for a in store.approvals(rollout_id)}
        for wave in waves:
            if not wave.phase.is_started and role in wave.approvals_required and \
                    (wave.name, wave.hash, role) not in approved:
                approve(store, rollout_id, wave.name, name, role, "contention", now)
                return
    issues = store.issues(rollout_id)
    untriaged = [i for i in issues if i.severity is None]
    if untriaged:
        set_issue(store, rollout_id, rng.choice(untriaged).id, name, now, severity=rng.choice(("minor", "major")))
    elif any(w.phase == WavePhase.HELD for w in waves):
        resume(store, rollout_id, name, now)
    elif issues and rng.random() < 0.6:
        issue = rng.choice([i for i in issues if not i.auto] or issues)
        if rng.random() < 0.5:
            set_issue(store, rollout_id, issue.id, name, now, severity=rng.choice(("minor", "major")))
        else:
            set_issue(store, rollout_id, issue.id, name, now, status=rng.choice(("open", "resolved")))
    elif rng.random() < 0.5:
        add_issue(store, rollout_id, f"reported by {name}", "site=tokyo", None, name, now)


def loop(role: str, name: str, state: str, rollout_id: str, stop: Path, rng: random.Random) -> None:
    alarms = stop.with_name(f"{stop.name}.{name}.alarms")
    while not stop.exists():
        store = fresh(state, rng)
        try:
            if role == "reader":
                report = store.verify_audit(rollout_id)
                if not report.ok:
                    with alarms.open("a", encoding="utf-8") as out:
                        out.write(f"{report.problem}\n")
            else:
                operate_once(store, rollout_id, name, rng)
        except (ConflictError, InputError, NotFoundError, StateStoreError):
            pass  # another operator changed the rollout first, or the wave moved on: decide again
        finally:
            store.close()
        time.sleep(PACE)  # a person's pace, so that the driver gets its share of the emulation


def main(argv: list[str]) -> int:
    role, name, state, rollout_id, seed, stop = argv
    rng = random.Random(f"{name}:{seed}")
    if role == "driver":
        return drive_once(os.environ.get("CONTENTION_STATE") or state, rollout_id, name, rng)
    loop(role, name, state, rollout_id, Path(stop), rng)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
