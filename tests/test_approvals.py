"""Approval rules: distinct people per role (exact matching), hash binding, case-insensitive names."""

from __future__ import annotations

import datetime as dt

import pytest

from rollout.core.approvals import missing_roles
from rollout.core.model import Approval, RolloutStatus, WavePhase, WaveState

NOW = dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC)
STATUS = RolloutStatus("r", "p", "Tanaka", NOW, True)


def wave(*roles: str) -> WaveState:
    return WaveState(0, "canary", "H", WavePhase.PLANNED, NOW, roles, 0, {})


def given(*pairs: str, wave_hash: str = "H") -> list[Approval]:
    return [Approval("canary", wave_hash, p.split(":")[0], p.split(":")[1], NOW) for p in pairs]


@pytest.mark.parametrize(
    ("roles", "approvals", "missing"),
    [
        (("pm", "security"), ("sato:pm", "suzuki:security"), ()),
        (("pm", "security"), ("sato:pm", "sato:security"), ("security",)),  # one person fills one role
        (("pm", "security"), ("Sato:pm", "sato:security"), ("security",)),  # names compare case-insensitively
        (("pm",), ("tanaka:pm",), ("pm",)),  # the starter
        (("pm",), ("TANAKA:pm",), ("pm",)),
        # x could fill a or b, y only a, z only c: a matching exists (y-a, x-b, z-c), greedy by order misses it.
        (("a", "b", "c"), ("x:a", "x:b", "y:a", "z:c"), ()),
        (("a", "b", "c"), ("x:a", "x:b", "x:c"), ("b", "c")),
        ((), (), ()),
    ],
)
def test_roles_are_filled_by_distinct_people(roles: tuple[str, ...], approvals: tuple[str, ...],
                                             missing: tuple[str, ...]) -> None:
    assert missing_roles(wave(*roles), given(*approvals), STATUS) == missing


def test_an_approval_for_another_hash_counts_for_nothing() -> None:
    assert missing_roles(wave("pm"), given("sato:pm", wave_hash="OLD"), STATUS) == ("pm",)
