"""Running a rehearsal with a progress bar, and its summary, for the CLI and the demo."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn

from rollout.backends.factory import BackendWrap
from rollout.backends.simulator import load_scenario
from rollout.core.model import DevicePhase
from rollout.drive.driver import Driver
from rollout.drive.rehearse import Rehearsal, rehearse
from rollout.plan import api
from rollout.plan.planfile import load_plan_file
from rollout.store.api import StateStore

DONE = {DevicePhase.VERIFIED.value, DevicePhase.REVERTED.value, DevicePhase.HELD.value, DevicePhase.EXCLUDED.value}


def run_rehearsal(plan_path: Path, inventory: Path, scenario: Path, state_path: Path,
                  start_date: dt.datetime | None, console: Console, *, store: StateStore | None = None,
                  backend: Mapping[str, Any] | None = None, wrap: BackendWrap | None = None) -> Rehearsal:
    plan = json.loads(plan_path.read_text(encoding="utf-8"))
    load_plan_file(plan_path)
    devices = api.load_inventory_for_plan(inventory, plan)
    begin = start_date or dt.datetime.fromisoformat(plan["schedule"]["start_date"])
    begin = begin.replace(hour=9, tzinfo=dt.UTC)
    total = len(devices)
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), console=console,
                  transient=True) as progress:
        task = progress.add_task("rehearsing", total=total)

        def on_tick(r: Rehearsal, driver: Driver) -> None:
            counts = driver.store.device_counts(r.rollout_id)
            done = sum(n for phase, n in counts.items() if phase.value in DONE)
            progress.update(task, completed=done, description=f"{driver.clock().date()} {driver.phase().value}")

        return rehearse(state_path, plan, devices, load_scenario(scenario), start=begin, on_tick=on_tick,
                        notify=lambda m: console.print(m, markup=False, highlight=False), store=store,
                        backend=backend, wrap=wrap)


def print_summary(result: Rehearsal, state_path: Path | str | None, console: Console) -> None:
    """The rehearsal's outcome per wave, and (given ``state_path``) how to look into its state."""
    duplicates = "" if result.duplicates is None else f"; duplicate actions: {result.duplicates}"
    console.print(f"Rehearsal of {result.rollout_id}: {result.phase.value.upper()} after {result.ticks} ticks, "
                  f"{result.started.date() if result.started else ''} to {result.ended.date() if result.ended else ''}"
                  f"{duplicates}", markup=False)
    for w in result.waves:
        devices = ", ".join(f"{k} {v:,}" for k, v in w["devices"].items())
        console.print(f"  {w['name']:<8} {w['phase']:<12} {devices}", markup=False, highlight=False)
        if w["verdict"] in ("fail", "inconclusive"):
            console.print(f"           gate {w['verdict']}: {'; '.join(w['reasons'])}", markup=False, highlight=False)
    if state_path is None:
        return
    url = state_path if isinstance(state_path, str) else f"sqlite:{state_path}"
    console.print(f"State: {url}. Inspect it with:\n  rollout status --state {url}\n"
                  f"  rollout audit verify --state {url}", markup=False, highlight=False)
