"""The crash harness: SIGKILL a real ``rollout rehearse`` process again and again, resume it on the
same state file, and check that the rollout ends exactly as an uninterrupted one does.

Kills come at random moments (after a random delay) and at the driver's named step boundaries
(``ROLLOUT_FAULT_KILL_AT=<step>:<n>``: before_intent, after_intent, after_backend, after_done).
After each history: no step carried out twice on a device (``Simulator.duplicate_actions`` on the
world file), the same devices migrated and reverted as in the uninterrupted run (none skipped),
every device settled, the same wave and device phases, both SQLite files intact, the audit log
verified. The control: with intents switched off (``ROLLOUT_UNSAFE_NO_INTENTS=1``) the same kills
do cause duplicate actions, which shows the harness can see them.
"""

from __future__ import annotations

import json
import random
import sqlite3
import subprocess
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

import pytest

from rollout.backends.simulator import Scenario, Simulator
from rollout.drive.rehearse import world_path
from tests.rollout_builders import (
    ROOT,
    SCENARIO,
    RehearsalFiles,
    cli_env,
    integrity,
    rollout_cmd,
    run_rollout,
    write_rehearsal_files,
)

pytestmark = pytest.mark.slow

STEPS = ("before_intent", "after_intent", "after_backend", "after_done")
SETTLED = {"verified", "reverted", "held", "excluded"}
WORKERS = 2  # this machine's cores; each history is one process at a time
MAX_RUNS = 80  # per history: more means the driver stopped making progress
UNSAFE = {"ROLLOUT_UNSAFE_NO_INTENTS": "1"}


@dataclass(frozen=True)
class Outcome:
    """What a finished rehearsal left behind, without timestamps."""

    waves: dict[str, str]
    devices: dict[str, tuple[int, str]]  # device -> (wave, phase)
    migrated: frozenset[str]  # devices the simulator ran a migration step on
    reverted: frozenset[str]
    duplicates: int


def read_outcome(state: Path) -> Outcome:
    db = sqlite3.connect(state)
    try:
        waves = dict(db.execute("SELECT name, phase FROM waves ORDER BY idx").fetchall())
        devices = {d: (w, p) for d, w, p in db.execute("SELECT device_id, wave, phase FROM devices")}
    finally:
        db.close()
    world = Simulator(world_path(state), Scenario.model_validate(SCENARIO))
    try:
        return Outcome(waves, devices, frozenset(world.acted_devices("migrate")),
                       frozenset(world.acted_devices("revert")), world.duplicate_actions())
    finally:
        world.close()


@dataclass
class History:
    """One rehearsal, killed ``kills`` times, then resumed to the end."""

    label: str
    state: Path
    kills: int = 0
    runs: int = 0
    spec_log: list[str] = field(default_factory=list)


def run_rehearsal(files: RehearsalFiles, history: History, env: dict[str, str],
                  kill_after: float | None = None) -> bool:
    """One run on the history's state; True if it was SIGKILLed, False if it finished."""
    history.runs += 1
    assert history.runs <= MAX_RUNS, f"{history.label}: no end after {MAX_RUNS} runs ({history.spec_log[-8:]})"
    proc = subprocess.Popen(rollout_cmd(*files.rehearse_args(history.state)), env=cli_env(**env), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        _, err = proc.communicate(timeout=kill_after if kill_after is not None else 120)
    except subprocess.TimeoutExpired:
        proc.kill()  # SIGKILL
        _, err = proc.communicate()
    if proc.returncode == -9:
        history.kills += 1
        return True
    assert proc.returncode == 0, f"{history.label}: run {history.runs} exited {proc.returncode}:\n{err}"
    return False


def random_history(files: RehearsalFiles, history: History, seed: int, window: tuple[float, float],
                   max_kills: int = 8) -> None:
    rng = random.Random(seed)
    for _ in range(max_kills):
        delay = rng.uniform(*window)
        history.spec_log.append(f"kill after {delay:.3f}s")
        if not run_rehearsal(files, history, {}, kill_after=delay):
            return
    while run_rehearsal(files, history, {}):
        pass


def step_history(files: RehearsalFiles, history: History, seed: int, env: dict[str, str] | None = None) -> None:
    """Each run dies at the n-th crossing of a step boundary; the step turns with every run."""
    rng = random.Random(seed)
    for i in range(MAX_RUNS):
        spec = f"{STEPS[(seed + i) % len(STEPS)]}:{rng.choice((1, 2, 3))}"
        history.spec_log.append(spec)
        if not run_rehearsal(files, history, {**(env or {}), "ROLLOUT_FAULT_KILL_AT": spec}):
            return


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> RehearsalFiles:
    return write_rehearsal_files(tmp_path_factory.mktemp("harness"), n=600)


@pytest.fixture(scope="module")
def reference(files: RehearsalFiles) -> tuple[Outcome, float]:
    """The uninterrupted run's outcome, and how long a run takes (to aim the random kills)."""
    state = files.plan.parent / "reference.db"
    began = time.monotonic()
    result = run_rollout(*files.rehearse_args(state))
    took = time.monotonic() - began
    assert result.returncode == 0, result.stderr
    outcome = read_outcome(state)
    # The scenario does what it says, so the harness covers a quarantine and a fleet-wide rollback.
    assert outcome.waves == {"canary": "passed", "wave-1": "passed", "wave-2": "passed",
                             "wave-3": "rolled_back", "final": "planned"}
    assert outcome.duplicates == 0
    assert any(phase == "reverted" for wave, phase in outcome.devices.values() if wave == 0)
    # In waves that passed, reverted devices are the ones whose own migration failed half-way.
    assert any(phase == "reverted" for wave, phase in outcome.devices.values() if wave in (1, 2))
    return outcome, took


def run_histories(work: list[Callable[[], None]]) -> None:
    """Run the histories two at a time (one per core); each is a chain of processes on its own state."""
    with ThreadPoolExecutor(WORKERS) as pool:
        for future in [pool.submit(job) for job in work]:
            future.result()


def assert_same_end(history: History, reference: Outcome) -> None:
    got = read_outcome(history.state)
    where = f"{history.label} ({history.kills} kills: {', '.join(history.spec_log)})"
    assert got.duplicates == 0, f"{where}: {got.duplicates} steps carried out twice"
    assert got.migrated == reference.migrated, \
        f"{where}: never migrated {sorted(reference.migrated - got.migrated)[:5]}, " \
        f"migrated although they should not be {sorted(got.migrated - reference.migrated)[:5]}"
    assert got.reverted == reference.reverted, f"{where}: reverted devices differ"
    started = {i for i, phase in enumerate(got.waves.values()) if phase != "planned"}
    unsettled = {d: p for d, (w, p) in got.devices.items() if w in started and p not in SETTLED}
    assert not unsettled, f"{where}: devices left unsettled: {dict(list(unsettled.items())[:5])}"
    assert got.waves == reference.waves, where
    assert got.devices == reference.devices, \
        f"{where}: {sum(got.devices[d] != reference.devices[d] for d in got.devices)} devices end differently"
    assert integrity(history.state) == "ok", where
    assert integrity(world_path(history.state)) == "ok", where
    verified = run_rollout("audit", "verify", "--state", f"sqlite:{history.state}")
    assert verified.returncode == 0, f"{where}: {verified.stderr}"


# (histories, kills at least): every pull request runs the first; the scheduled workflow the second.
RANDOM_RUNS = [pytest.param(12, 30, id="pr"), pytest.param(40, 100, id="exhaustive", marks=pytest.mark.nightly)]
STEP_RUNS = [pytest.param(8, 40, id="pr"), pytest.param(20, 100, id="exhaustive", marks=pytest.mark.nightly)]


@pytest.mark.parametrize(("histories_n", "min_kills"), RANDOM_RUNS)
def test_random_kills_resume_to_the_uninterrupted_end(files: RehearsalFiles, reference: tuple[Outcome, float],
                                                      tmp_path: Path, histories_n: int, min_kills: int) -> None:
    outcome, took = reference
    window = (0.18, max(0.4, 0.85 * took))  # from the end of the imports to most of a whole run
    histories = [History(f"random seed {seed}", tmp_path / f"random-{seed}.db") for seed in range(histories_n)]
    run_histories([partial(random_history, files, h, seed, window) for seed, h in enumerate(histories)])
    for history in histories:
        assert_same_end(history, outcome)
    kills = sum(h.kills for h in histories)
    print(f"random kills: {kills} in {sum(h.runs for h in histories)} runs")
    assert kills >= min_kills


@pytest.mark.parametrize(("histories_n", "min_kills"), STEP_RUNS)
def test_kills_at_each_step_boundary_resume_to_the_uninterrupted_end(
        files: RehearsalFiles, reference: tuple[Outcome, float], tmp_path: Path, histories_n: int,
        min_kills: int) -> None:
    histories = [History(f"steps seed {seed}", tmp_path / f"steps-{seed}.db") for seed in range(histories_n)]
    run_histories([partial(step_history, files, h, seed) for seed, h in enumerate(histories)])
    for history in histories:
        assert_same_end(history, reference[0])
    kills = sum(h.kills for h in histories)
    per_step = {step: sum(s.startswith(step) for h in histories for s in h.spec_log[:-1]) for step in STEPS}
    print(f"step kills: {kills} in {sum(h.runs for h in histories)} runs; {json.dumps(per_step)}")
    assert kills >= min_kills
    assert all(n >= min_kills // 10 for n in per_step.values()), per_step


def test_without_intents_the_same_kills_migrate_devices_twice(files: RehearsalFiles, tmp_path: Path) -> None:
    """The control: the harness sees duplicates when the driver does not record intents."""
    calm = History("no intents, no kills", tmp_path / "unsafe-calm.db")
    assert not run_rehearsal(files, calm, UNSAFE)
    assert read_outcome(calm.state).duplicates == 0  # so the duplicates below come from the kills
    histories = [History(f"no intents seed {seed}", tmp_path / f"unsafe-{seed}.db") for seed in range(4)]
    run_histories([partial(step_history, files, h, seed, UNSAFE) for seed, h in enumerate(histories)])
    duplicates = [read_outcome(h.state).duplicates for h in histories]
    print(f"duplicates without intents: {duplicates} after {sum(h.kills for h in histories)} kills")
    assert sum(duplicates) > 0

