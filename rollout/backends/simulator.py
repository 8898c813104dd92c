"""The rehearsal simulator: a stand-in fleet for rehearsing a plan before touching production.

A scenario file (YAML) says what goes wrong: fault rules, each with a cohort selector, the waves
it applies to (all if omitted), the check it breaks (``kitting``, ``signin``, ``ztna``, ``app``;
``migrate`` for the backend call itself) and a probability. Devices check in after a delay drawn
between ``checkin_delay.min`` and ``max``; a share ``offline`` never checks in. Every draw is a
hash of (seed, device, what, generation), so a rehearsal is deterministic by seed, in any order.

The simulated fleet lives in its own SQLite file (``world``): which migration steps are in place
on each device and every operation that touched it. Operations are idempotent per
``(op_id, device, step)``, like the AWS calls they stand for, and only per that: a step that one
operation put in place is carried out again by another. ``duplicate_actions`` counts a step
carried out by two different operations in one generation, which a correct driver never causes.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import sqlite3
from collections.abc import Collection, Mapping, Sequence
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from rollout.backends import NOT_DISPATCHED, Abort, Progress
from rollout.core.decision import Signals
from rollout.core.device import Device
from rollout.core.gatespec import Duration
from rollout.core.model import MIGRATE_STEPS, ROLLBACK_STEPS, StepResult
from rollout.core.selectors import Selector, SelectorSyntaxError
from rollout.core.verdicts import HealthReport
from rollout.errors import Problem, ScenarioError
from rollout.files import create_private
from rollout.plan.yamlsafe import (
    YamlProblem,
    format_key_path,
    load_yaml_file,
    located,
    validation_problems,
)

CHECKS = ("kitting", "signin", "ztna", "app")


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)


def _selector_syntax(text: str) -> str:
    """A selector that parses (``model=X,app=Y``), so a rehearsal never fails on one half-way."""
    if text:
        try:
            Selector.parse(text)
        except SelectorSyntaxError as err:
            raise ValueError(f"{err}; write it as key=value[,key=value...]") from None
    return text


class Fault(_Model):
    name: str = ""
    selector: str = ""
    waves: tuple[str, ...] = ()
    check: Literal["kitting", "signin", "ztna", "app", "migrate"]
    probability: float = Field(ge=0, le=1)

    _selector = field_validator("selector")(_selector_syntax)


class DelayRange(_Model):
    min: Duration = 1800
    max: Duration = 6 * 3600


class ReportedIssue(_Model):
    """A problem users report during a wave; the rehearsal's approver triages it."""

    wave: str
    title: str
    selector: str
    severity: Literal["blocker", "major", "minor"] = "minor"
    resolve_after: str | None = None  # resolved when this wave passes

    _selector = field_validator("selector")(_selector_syntax)


class Scenario(_Model):
    seed: int = Field(default=1, ge=-(2**63), le=2**63 - 1)
    baseline_failure: float = Field(default=0.002, ge=0, le=1)
    checkin_delay: DelayRange = DelayRange()
    offline: float = Field(default=0.005, ge=0, le=1)
    tickets_per_device: float = Field(default=0.01, ge=0, le=1)
    faults: tuple[Fault, ...] = ()
    issues: tuple[ReportedIssue, ...] = ()


def load_scenario(path: str | Path) -> Scenario:
    """Read and validate a scenario file through the bounded YAML loader; raise ScenarioError
    listing every problem as ``scenario.yaml:12: faults[0].probability: ...``."""
    path = Path(path)
    try:
        document = load_yaml_file(path)
    except YamlProblem as err:
        raise ScenarioError(err.problems, source=path.name) from None
    if document.duplicates:
        raise ScenarioError([Problem(f"{path.name}:{line}", format_key_path(key), f"duplicate of line {first}")
                             for key, line, first in document.duplicates], source=path.name)
    data = {} if document.data is None else document.data
    if not isinstance(data, dict):
        raise ScenarioError([located(path.name, {}, (), "expected a mapping of scenario keys; see "
                                                     "examples/scenario.yaml")], source=path.name)
    try:
        return Scenario.model_validate(data)
    except ValidationError as err:
        raise ScenarioError(validation_problems(path.name, document.lines, err), source=path.name) from None


def uniform(*parts: object) -> float:
    """A deterministic draw in [0, 1) from its parts."""
    digest = hashlib.blake2b("|".join(map(str, parts)).encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64


WORLD_SCHEMA = """
CREATE TABLE IF NOT EXISTS fleet (device_id TEXT PRIMARY KEY, steps INTEGER NOT NULL, generation INTEGER NOT NULL,
                                  wave TEXT, migrated_at TEXT);
CREATE TABLE IF NOT EXISTS actions (op_id TEXT NOT NULL, device_id TEXT NOT NULL, step TEXT NOT NULL,
                                    verb TEXT NOT NULL, generation INTEGER NOT NULL,
                                    UNIQUE (op_id, device_id, step, verb))
"""


class FaultOdds:
    """The scenario's fault rules as odds: the chance that ``check`` fails on a device in a wave."""

    def __init__(self, scenario: Scenario) -> None:
        self.scenario = scenario
        self._faults = [(f, Selector.parse(f.selector) if f.selector else None) for f in scenario.faults]

    def failure_probability(self, device: Device, wave: str, check: str) -> float:
        ok = 1.0 - (self.scenario.baseline_failure if check != "migrate" else 0.0)
        for fault, selector in self._faults:
            if fault.check == check and (not fault.waves or wave in fault.waves) and \
                    (selector is None or selector.matches(device)):
                ok *= 1.0 - fault.probability
        return 1.0 - ok


class Simulator:
    def __init__(self, world: str | Path, scenario: Scenario) -> None:
        self.scenario = scenario
        create_private(world)  # the fleet's devices and users: readable by this user only
        self.db = sqlite3.connect(world, isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.execute("PRAGMA synchronous=FULL")
        self.db.executescript(WORLD_SCHEMA)
        self.failure_probability = FaultOdds(scenario).failure_probability

    def _state(self, device_id: str) -> tuple[int, int, str | None]:
        row = self.db.execute("SELECT steps, generation, migrated_at FROM fleet WHERE device_id=?",
                              (device_id,)).fetchone()
        return (row[0], row[1], row[2]) if row else (0, 0, None)

    def _steps_by(self, op_id: str, device_id: str, verb: str) -> set[str]:
        """The steps operation ``op_id`` already carried out on the device (its idempotency record)."""
        return {r[0] for r in self.db.execute("SELECT step FROM actions WHERE op_id=? AND device_id=? AND verb=?",
                                              (op_id, device_id, verb))}

    def migrate(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
                now: dt.datetime, *, max_errors: int | None = None, replay: bool = False,
                refs: Mapping[str, str] | None = None, progress: Progress | None = None,
                abort: Abort | None = None) -> list[StepResult]:
        """Run the migration steps not yet done *by this operation*. A step another operation put in
        place is carried out again, as a real call with a new idempotency token would be: that is the
        duplicate ``duplicate_actions`` counts. Replaying ``op_id`` after a crash changes nothing.
        Devices are taken in order; after failure ``max_errors + 1`` the rest is not dispatched."""
        out = []
        failures = 0
        self.db.execute("BEGIN IMMEDIATE")
        for n, device in enumerate(devices):
            if max_errors is not None and failures > max_errors:
                out.append(StepResult(device.device_id, False, steps_done.get(device.device_id, 0), now,
                                      NOT_DISPATCHED, retriable=True))
                continue
            if progress is not None:
                progress(n, len(devices))
            steps, generation, migrated_at = self._state(device.device_id)
            mine = self._steps_by(op_id, device.device_id, "migrate")
            if len(mine) == len(MIGRATE_STEPS) and migrated_at:  # replayed after a crash: already done
                out.append(StepResult(device.device_id, True, steps, dt.datetime.fromisoformat(migrated_at)))
                continue
            fails = uniform(self.scenario.seed, device.device_id, "migrate", generation) < \
                self.failure_probability(device, wave, "migrate")
            error = ""
            for bit, step in enumerate(MIGRATE_STEPS):
                if step in mine:
                    continue
                if fails and step == "endpoint":
                    error = "SendCommand for the kitting document failed on this device"
                    break
                self.db.execute("INSERT OR IGNORE INTO actions VALUES (?,?,?,?,?)",
                                (op_id, device.device_id, step, "migrate", generation))
                steps |= 1 << bit
            ok = not error
            failures += int(not ok)
            self.db.execute("INSERT INTO fleet VALUES (?,?,?,?,?) ON CONFLICT(device_id) DO UPDATE SET "
                            "steps=excluded.steps, wave=excluded.wave, migrated_at=excluded.migrated_at",
                            (device.device_id, steps, generation, wave, now.isoformat() if ok else None))
            out.append(StepResult(device.device_id, ok, steps, now, error))
        self.db.execute("COMMIT")
        return out

    def revert(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
               now: dt.datetime, *, replay: bool = False, refs: Mapping[str, str] | None = None,
               progress: Progress | None = None, abort: Abort | None = None,
               keep_access: Collection[str] = ()) -> list[StepResult]:
        """Undo the steps in place, access first, and start the device's next generation. Replaying
        ``op_id`` changes nothing; another operation on a device already reverted runs the undo of
        the previous generation's steps again (recorded under that generation: a duplicate)."""
        out = []
        self.db.execute("BEGIN IMMEDIATE")
        for device in devices:
            steps, generation, _ = self._state(device.device_id)
            if not steps:
                if generation > 0 and not self._steps_by(op_id, device.device_id, "revert"):
                    for (step,) in self.db.execute(
                            "SELECT DISTINCT step FROM actions WHERE device_id=? AND verb='revert' AND generation=?",
                            (device.device_id, generation - 1)).fetchall():
                        self.db.execute("INSERT OR IGNORE INTO actions VALUES (?,?,?,?,?)",
                                        (op_id, device.device_id, step, "revert", generation - 1))
                out.append(StepResult(device.device_id, True, 0, now))
                continue
            for step in ROLLBACK_STEPS:
                bit = 1 << MIGRATE_STEPS.index(step)
                if steps & bit:
                    self.db.execute("INSERT OR IGNORE INTO actions VALUES (?,?,?,?,?)",
                                    (op_id, device.device_id, step, "revert", generation))
                    steps &= ~bit
            self.db.execute("INSERT INTO fleet VALUES (?,?,?,?,NULL) ON CONFLICT(device_id) DO UPDATE SET "
                            "steps=0, generation=excluded.generation, migrated_at=NULL",
                            (device.device_id, 0, generation + 1, wave))
            out.append(StepResult(device.device_id, True, 0, now))
        self.db.execute("COMMIT")
        return out

    def read_signals(self, rollout_id: str, wave: str, devices: Sequence[Device], now: dt.datetime, *,
                     refs: Mapping[str, str] | None = None) -> Signals:
        reports: dict[str, HealthReport] = {}
        tickets: dict[str, int] = {}
        seed, delay = self.scenario.seed, self.scenario.checkin_delay
        for device in devices:
            row = self.db.execute("SELECT migrated_at, generation, wave FROM fleet WHERE device_id=?",
                                  (device.device_id,)).fetchone()
            if row is None or row[0] is None:
                continue
            migrated_at, generation, device_wave = dt.datetime.fromisoformat(row[0]), row[1], row[2]
            key = (seed, device.device_id, generation)
            if uniform(*key, "offline") < self.scenario.offline:
                continue
            at = migrated_at + dt.timedelta(seconds=delay.min + uniform(*key, "delay") * (delay.max - delay.min))
            if at > now:
                continue
            checks = {c: uniform(*key, c) >= self.failure_probability(device, device_wave, c) for c in CHECKS}
            reports[device.device_id] = HealthReport(device.device_id, at, checks)
            raised = int(not all(checks.values())) + int(uniform(*key, "ticket") < self.scenario.tickets_per_device)
            if raised:
                tickets[device.device_id] = raised
        return Signals(reports=reports, tickets=tickets)

    def duplicate_actions(self) -> int:
        """Steps carried out by more than one operation on a device in one generation (should be 0)."""
        row = self.db.execute("SELECT COUNT(*) FROM (SELECT device_id, step, verb, generation FROM actions "
                              "GROUP BY device_id, step, verb, generation HAVING COUNT(DISTINCT op_id) > 1)").fetchone()
        return int(row[0])

    def acted_devices(self, verb: str = "migrate") -> set[str]:
        return {r[0] for r in self.db.execute("SELECT DISTINCT device_id FROM actions WHERE verb=?", (verb,))}

    def close(self) -> None:
        self.db.close()
