"""The report's overall traffic light: red, yellow or green, and the reasons why. Pure.

``assess_light(status)`` reads a ``zt-rollout/status/v1`` document (``rollout.reports.status.status_json``)
and applies one rule; each reason is a fact of the status with the level it earns:

RED (someone must act now):
  ``halted``        the rollout is halted (a wave failed its gate, or an operator rolled one back)
  ``wave_failing``  a wave is failed or rolling back
  ``blocker``       an open blocker issue (it holds the devices of its cohort)
YELLOW (watch it; the rollout waits or carries a risk):
  ``paused``        the rollout is paused
  ``duties_waived`` separation of duties was waived: the starter may approve waves (who, why)
  ``wave_held``     a wave is held for a human decision
  ``gate_unsure``   a wave still applying or baking has a last gate verdict of inconclusive or error
  ``untriaged``     an open issue without a severity (the next wave waits for its triage)
  ``major``         an open major issue
  ``rolled_back``   a wave was rolled back (and the rollout was resumed, or it would be halted)
GREEN: none of these (running on plan, waiting for an approval, or completed cleanly).

The light is the worst level among the reasons; the reasons come worst first, then in the order
above, then by wave or issue. Issues in ``workaround``, ``resolved`` or ``accepted`` status and
minor issues earn nothing.

Worked example (the demo's rehearsal): wave-4 failed its sign-in gate and was rolled back, so the
rollout is halted; the canary's dynabook cohort sits under open blocker #1 holding 1,530 devices.
Reasons: ``halted`` (red), ``blocker`` #1 (red), ``rolled_back`` wave-4 (yellow): the light is RED.
Resolve the blocker and resume, and only ``rolled_back`` remains: YELLOW.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Light(StrEnum):
    """A traffic light, in worst-of order."""

    GREEN = "green"
    YELLOW = "yellow"
    RED = "red"

    @property
    def rank(self) -> int:
        return tuple(Light).index(self)


# Rule order: the order reasons are listed in within one level.
RULES = ("halted", "wave_failing", "blocker", "paused", "duties_waived", "wave_held", "gate_unsure", "untriaged", "major",
         "rolled_back")


@dataclass(frozen=True, slots=True)
class Reason:
    light: Light
    code: str  # one of RULES
    params: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Assessment:
    light: Light
    reasons: tuple[Reason, ...]


def assess_light(status: Mapping[str, Any]) -> Assessment:
    """The traffic light of a status document and its reasons (see the module docstring)."""
    reasons = _rollout_reasons(status) + _wave_reasons(status["waves"]) + _issue_reasons(status["issues"])
    ordered = sorted(reasons, key=lambda r: (-r.light.rank, RULES.index(r.code)))
    light = max((r.light for r in ordered), key=lambda x: x.rank, default=Light.GREEN)
    return Assessment(light, tuple(ordered))


def _rollout_reasons(status: Mapping[str, Any]) -> list[Reason]:
    out = []
    if status["halted"]["halted"]:
        out.append(Reason(Light.RED, "halted", {"reason": status["halted"]["reason"]}))
    if status["paused"]["paused"]:
        out.append(Reason(Light.YELLOW, "paused", {"reason": status["paused"]["reason"]}))
    waived = status.get("separation_of_duties", {}).get("waived")
    if waived:
        out.append(Reason(Light.YELLOW, "duties_waived", {"by": waived["by"], "role": waived["role"],
                                                          "reason": waived["reason"], "starter": status["started_by"]}))
    return out


def _wave_reasons(waves: list[Mapping[str, Any]]) -> list[Reason]:
    out = []
    for w in waves:
        phase, name = w["phase"], w["name"]
        if phase in ("failed", "rolling_back"):
            out.append(Reason(Light.RED, "wave_failing", {"wave": name, "phase": phase}))
        elif phase == "held":
            out.append(Reason(Light.YELLOW, "wave_held", {"wave": name}))
        elif phase == "rolled_back":
            out.append(Reason(Light.YELLOW, "rolled_back", {"wave": name}))
        elif phase in ("applying", "baking") and w.get("gate"):
            verdict = w["gate"]["gate"]["verdict"]
            if verdict in ("inconclusive", "error"):
                out.append(Reason(Light.YELLOW, "gate_unsure", {"wave": name, "verdict": verdict}))
    return out


def _issue_reasons(issues: list[Mapping[str, Any]]) -> list[Reason]:
    out = []
    for i in issues:
        if i["status"] != "open":
            continue
        params = {"id": i["id"], "title": i["title"], "selector": i["selector"], "holds": i["holds_devices"]}
        if i["severity"] == "blocker":
            out.append(Reason(Light.RED, "blocker", params))
        elif i["severity"] is None:
            out.append(Reason(Light.YELLOW, "untriaged", params))
        elif i["severity"] == "major":
            out.append(Reason(Light.YELLOW, "major", params))
    return out
