"""Builders for the gate tests: devices, gate specs and wave evidence with failures placed by id."""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

from rollout.core.device import Device
from rollout.core.gatespec import GateSpec
from rollout.core.signals import RATE_SIGNALS
from rollout.core.verdicts import AlarmState, HealthReport, WaveEvidence

MIGRATED = dt.datetime(2025, 4, 1, 9, 0, tzinfo=dt.UTC)
NOW = MIGRATED + dt.timedelta(hours=12)
LONG_AGO = NOW - dt.timedelta(days=3)  # past the default 2-day check-in deadline


def make_device(i: int, *, model: str = "FMV LIFEBOOK U9", department: str = "営業部", site: str = "tokyo",
                os_version: str = "11 23H2", apps: tuple[str, ...] = ("Teams",)) -> Device:
    return Device(device_id=f"D{i:05d}", hostname=f"PC-{i:05d}", serial=f"SN{i:05d}", user=f"u{i}@example.co.jp",
                  site=site, department=department, model=model, os="Windows", os_version=os_version, apps=apps)


def make_devices(n: int, start: int = 1, **fields: Any) -> list[Device]:
    return [make_device(i, **fields) for i in range(start, start + n)]


def make_spec(**overrides: Any) -> GateSpec:
    return GateSpec.model_validate(overrides)


def make_evidence(
    devices: Iterable[Device],
    *,
    fail: Mapping[str, Collection[str]] | None = None,
    silent: Collection[str] = (),
    stale: Collection[str] = (),
    migrated_at: Mapping[str, dt.datetime] | None = None,
    tickets: Mapping[str, int] | None = None,
    alarms: Iterable[tuple[str, str]] = (),
    errors: Iterable[str] = (),
    measured: Collection[str] = RATE_SIGNALS,
) -> WaveEvidence:
    """Every device migrated at MIGRATED (or ``migrated_at``) and reporting an hour later, with each
    signal of ``measured`` ok unless the device is in ``fail[signal]``. ``silent`` devices have no
    report; ``stale`` ones have a report from an hour before their migration, with every check failed."""
    fail = fail or {}
    by_id = {d.device_id: d for d in devices}
    when = {i: (migrated_at or {}).get(i, MIGRATED) for i in by_id}
    reports: dict[str, HealthReport] = {}
    for device_id in by_id:
        if device_id in silent:
            continue
        if device_id in stale:
            reports[device_id] = HealthReport(device_id, when[device_id] - dt.timedelta(hours=1),
                                              {s: False for s in measured})
        else:
            checks = {s: device_id not in fail.get(s, ()) for s in measured}
            reports[device_id] = HealthReport(device_id, when[device_id] + dt.timedelta(hours=1), checks)
    return WaveEvidence(by_id, when, reports, dict(tickets or {}),
                        tuple(AlarmState(n, s) for n, s in alarms), tuple(errors))


def ids(devices: Iterable[Device]) -> list[str]:
    return [d.device_id for d in devices]
