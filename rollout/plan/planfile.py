"""The plan file: the JSON that ``rollout plan --out`` writes and ``diff``/``start`` read.

Schema ``zt-rollout/plan/v1`` (documented in the README). Plans are written with
``rollout.files.write_json_atomic``, so a failed run never leaves half a plan behind.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from rollout.errors import PlanFileError
from rollout.plan.planner import PLAN_SCHEMA, Plan, coverage_json
from rollout.plan.policy import format_key_path


def plan_to_json(plan: Plan) -> dict[str, Any]:
    return {
        "schema": PLAN_SCHEMA,
        "rollout": plan.rollout,
        "plan_hash": plan.plan_hash,
        "inputs": {"inventory_sha256": plan.inventory_sha256, "policy_sha256": plan.policy_sha256,
                   "devices": plan.devices_total},
        "schedule": {"start_date": str(plan.start_date), "projected_completion": str(plan.projected_completion)},
        "coverage": coverage_json(plan.coverage),
        "waves": [
            {
                "index": w.index,
                "name": w.name,
                "canary": w.canary,
                "hash": w.hash,
                "size_rule": w.size_rule,
                "size": len(w.devices),
                "bake_seconds": w.bake_seconds,
                "approvals": list(w.approvals),
                "start": str(w.dates.start),
                "end": str(w.dates.end),
                "bake_until": str(w.dates.bake_until),
                "sites": dict(w.sites),
                "gates": dict(w.gates),
                "devices": list(w.devices),
            }
            for w in plan.waves
        ],
        "excluded": [{"device_id": d, "reason": r} for d, r in plan.excluded],
        "warnings": list(plan.warnings),
    }


class _Strict(BaseModel):
    model_config = ConfigDict(extra="ignore", frozen=True)


class WaveDoc(_Strict):
    index: int
    name: str
    canary: bool
    hash: str
    size: int
    approvals: list[str]
    bake_seconds: int
    start: str
    end: str
    bake_until: str
    devices: list[str]
    gates: dict[str, Any] = {}


class CoverageDoc(_Strict):
    cohorts_total: int
    cohorts_covered: int
    fleet_share_covered: float


class ScheduleDoc(_Strict):
    start_date: str
    projected_completion: str


class PlanDoc(_Strict):
    """A plan file as read back: enough for diff, status and start."""

    schema_: str
    rollout: str
    plan_hash: str
    schedule: ScheduleDoc
    coverage: CoverageDoc
    waves: list[WaveDoc]
    excluded: list[dict[str, str]] = []

    def wave_of(self) -> dict[str, str]:
        """Device id -> wave name."""
        return {d: w.name for w in self.waves for d in w.devices}


def load_plan_file(path: str | Path) -> PlanDoc:
    path = Path(path)
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except OSError as err:
        raise PlanFileError(f"{path}: cannot read: {err.strerror}. Write a plan with `rollout plan --out`.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise PlanFileError(f"{path}: not a JSON plan file ({err}). Write one with `rollout plan --out`.") from None
    if not isinstance(raw, dict) or raw.get("schema") != PLAN_SCHEMA:
        raise PlanFileError(f"{path}: schema: expected {PLAN_SCHEMA!r}; write the plan with `rollout plan --out`.")
    try:
        return PlanDoc.model_validate({**raw, "schema_": raw["schema"]})
    except ValidationError as err:
        first = err.errors()[0]
        raise PlanFileError(
            f"{path}: {format_key_path(tuple(first['loc']))}: {first['msg']}; "
            "the file is damaged or was edited by hand: write it again with `rollout plan --out`."
        ) from None
