"""People's names: look-alikes are one person for separation of duties, and waiving it is a recorded act.

The attacks are those of a careless user or an insider who can type any ``--as``: the starter
approving under a spelling that differs only in spaces, width, case, script or invisible
characters. Each must be refused through the CLI, with nothing recorded.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result

from rollout.cli.main import cli
from rollout.core.names import display_name, person_key
from rollout.errors import InputError
from rollout.store.sqlite import SqliteStore

STARTER = "alice"
LOOK_ALIKES = {
    "trailing space": "alice ",
    "leading space": " alice",
    "full-width": "ａｌｉｃｅ",
    "Cyrillic a": "\u0430lice",
    "zero-width space": "alice\u200b",
    "zero-width joiner inside": "al\u200dice",
    "upper case with dotted I": "ALİCE",
    "dotless i": "alıce",
    "capital I for l": "aIice",
    "digit 1 for l": "a1ice",
    "combining acute": "ali\u0301ce",
    "bidi mark": "\u200ealice",
}
DIFFERENT = ["bob", "alicia", "佐藤 花子", "鈴木 一郎", "alice2"]


@pytest.mark.parametrize("name", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_a_look_alike_has_the_starters_key(name: str) -> None:
    assert person_key(name) == person_key(STARTER)


@pytest.mark.parametrize("name", DIFFERENT)
def test_different_people_keep_different_keys(name: str) -> None:
    assert person_key(name) != person_key(STARTER)


@pytest.mark.parametrize("raw", ["", "   ", "\u200b\u200b", "al\x1bice", "al\x00ice", "x" * 129])
def test_a_name_that_cannot_be_recorded_is_refused(raw: str) -> None:
    with pytest.raises(InputError, match="--as: "):
        display_name(raw, what="--as")


def test_a_recorded_name_is_the_visible_text_only() -> None:
    assert display_name("  ａｌｉｃｅ\u200b  ") == "alice"
    assert display_name("佐藤\u3000花子") == "佐藤 花子"  # an ideographic space becomes one space


def invoke(*args: str) -> Result:
    return CliRunner().invoke(cli, list(args))


@pytest.fixture
def state(tmp_path: Path, fleet_csv: Callable[..., Path], write_policy: Callable[..., Path]) -> list[str]:
    inventory = fleet_csv(600, 21)
    policy = write_policy(waves=[{"name": "canary", "canary": True, "size": 40, "bake": "1d", "approvals": ["pm"]},
                                 {"name": "final", "size": "rest", "bake": "1d"}], constraints={"last_tags": ["vip"]})
    plan, scenario = tmp_path / "plan.json", tmp_path / "scenario.yaml"
    assert invoke("plan", "--inventory", str(inventory), "--policy", str(policy), "--out", str(plan)).exit_code == 0
    scenario.write_text("seed: 1\noffline: 0\n", encoding="utf-8")
    where = ["--state", f"sqlite:{tmp_path / 'state.db'}"]
    started = invoke("start", "--plan", str(plan), "--inventory", str(inventory), "--scenario", str(scenario),
                     "--as", STARTER, *where)
    assert started.exit_code == 0, started.output
    return where


def status(where: list[str]) -> dict[str, Any]:
    result = invoke("status", "--format", "json", *where)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)  # type: ignore[no-any-return]


def audit_head(where: list[str]) -> tuple[int, str]:
    store = SqliteStore(where[1].removeprefix("sqlite:"))
    try:
        return store.audit_head(store.rollout_ids()[0])
    finally:
        store.close()


@pytest.mark.parametrize("name", list(LOOK_ALIKES.values()), ids=list(LOOK_ALIKES))
def test_the_starter_cannot_approve_under_a_look_alike_name(state: list[str], name: str) -> None:
    before = audit_head(state)
    result = invoke("approve", "canary", "--role", "pm", "--as", name, *state)
    assert result.exit_code == 2, result.output
    assert "cannot approve its waves (separation of duties)" in result.output
    assert audit_head(state) == before
    assert status(state)["waves"][0]["approvals"]["missing"] == ["pm"]


@pytest.mark.parametrize("name", ["", "  ", "\u200b"])
def test_an_empty_name_is_no_approval(state: list[str], name: str) -> None:
    before = audit_head(state)
    result = invoke("approve", "canary", "--role", "pm", "--as", name, *state)
    assert result.exit_code == 2 and "--as: empty" in result.output
    assert audit_head(state) == before


def test_another_person_approves_and_is_recorded_by_the_visible_name(state: list[str]) -> None:
    assert invoke("approve", "canary", "--role", "pm", "--as", " ｂｏｂ ", *state).exit_code == 0
    valid = status(state)["waves"][0]["approvals"]["valid"]
    assert [a["by"] for a in valid] == ["bob"]


def test_the_starter_cannot_turn_separation_of_duties_off_at_start(tmp_path: Path, state: list[str]) -> None:
    result = invoke("start", "--plan", "x.json", "--inventory", "x.csv", "--scenario", "x.yaml",
                    "--no-separation-of-duties", "--as", STARTER, "--state", f"sqlite:{tmp_path / 'other.db'}")
    assert result.exit_code == 2 and "cannot turn off the rule that binds them" in result.output
    assert not (tmp_path / "other.db").exists()


@pytest.mark.parametrize(("who", "role", "expected"), [
    (STARTER, "security", "cannot waive the rule that binds them"),
    ("ＡＬＩＣＥ", "security", "cannot waive the rule that binds them"),
    ("carol", "pm", "only the security role may waive"),
])
def test_waiving_separation_of_duties_is_refused_to_the_starter_and_other_roles(
        state: list[str], who: str, role: str, expected: str) -> None:
    before = audit_head(state)
    result = invoke("separation-of-duties", "waive", "--role", role, "--reason", "small team", "--as", who, *state)
    assert result.exit_code == 2 and expected in result.output
    assert audit_head(state) == before
    assert status(state)["separation_of_duties"] == {"enforced": True, "waived": None}


def test_a_waiver_by_security_is_recorded_shown_and_lets_the_starter_approve(state: list[str]) -> None:
    waived = invoke("separation-of-duties", "waive", "--role", "security", "--reason", "a two-person team",
                    "--as", "carol", *state)
    assert waived.exit_code == 0, waived.output
    shown = status(state)["separation_of_duties"]
    assert shown["enforced"] is False and shown["waived"]["by"] == "carol"
    assert shown["waived"]["role"] == "security" and shown["waived"]["reason"] == "a two-person team"
    table = invoke("status", *state)
    assert "separation of duties WAIVED by carol (security" in table.output
    assert invoke("approve", "canary", "--role", "pm", "--as", STARTER, *state).exit_code == 0
    store = SqliteStore(state[1].removeprefix("sqlite:"))
    kinds = [e.kind for e in store.events(store.rollout_ids()[0])]
    store.close()
    assert "rollout.separation_of_duties_waived" in kinds
    again = invoke("separation-of-duties", "waive", "--role", "security", "--reason", "x", "--as", "dave", *state)
    assert again.exit_code == 2 and "already off" in again.output


def test_the_report_shows_a_waiver_and_is_not_green(state: list[str]) -> None:
    before = invoke("report", "--format", "markdown", *state)
    assert before.exit_code == 0 and "Separation of duties is waived" not in before.output
    assert invoke("separation-of-duties", "waive", "--role", "security", "--reason", "two-person team",
                  "--as", "carol", *state).exit_code == 0
    for lang, text in (("en", "Separation of duties is waived by carol \\(security\\): alice may approve waves."),
                       ("ja", "職務分離は carol（security）により免除されています")):
        report = invoke("report", "--format", "markdown", "--lang", lang, *state)
        assert report.exit_code == 0 and text in report.output, report.output[:400]
    assert "🟢" not in invoke("report", "--format", "markdown", *state).output.splitlines()[0]
