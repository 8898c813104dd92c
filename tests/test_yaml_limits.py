"""The bounded YAML loader and the limits of the policy, scenario and inventory readers, at library
level: modest anchors still work, limits are exact, every refusal is located."""

from __future__ import annotations

from pathlib import Path

import pytest

from rollout.backends.simulator import load_scenario
from rollout.errors import InventoryError, PolicyError, ScenarioError
from rollout.plan.inventory import MAX_COLUMNS, parse_inventory
from rollout.plan.policy import parse_policy
from rollout.plan.yamlsafe import MAX_DEPTH, MAX_VALUES, YamlProblem, parse_yaml
from tests.conftest import EXAMPLE_POLICY
from tests.inventory_builders import csv_text, device_row, json_text

EXAMPLE = EXAMPLE_POLICY.read_text(encoding="utf-8")


def problems(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.yaml")
    return [str(p) for p in caught.value.problems]


def test_a_policy_that_shares_its_gates_through_an_anchor_still_loads() -> None:
    text = EXAMPLE.replace("    bake: 5d\n", "    bake: 5d\n    gates: &strict {min_checkins: 20}\n", 1)
    text = text.replace("    bake: 3d\n", "    bake: 3d\n    gates: *strict\n", 1)
    policy = parse_policy(text)
    assert policy.gates_for(policy.waves[1]).min_checkins == 20
    assert policy.gates_for(policy.waves[2]).min_checkins == 20


def test_merge_keys_still_merge() -> None:
    doc = parse_yaml("base: &b {x: 1, y: 2}\nmine: {<<: *b, y: 3}\n", source="s.yaml")
    assert doc.data["mine"] == {"x": 1, "y": 3}


def test_the_value_budget_counts_aliases_expanded() -> None:
    width = 100
    under = "a: &a [" + ", ".join(["1"] * (width - 1)) + "]\n"
    fits = under + "b: [" + ", ".join(["*a"] * (MAX_VALUES // width - 2)) + "]\n"
    assert len(parse_yaml(fits, source="s.yaml").data["b"]) == MAX_VALUES // width - 2
    over = under + "b: [" + ", ".join(["*a"] * (MAX_VALUES // width + 1)) + "]\n"
    with pytest.raises(YamlProblem, match=r"s\.yaml:2: b: with its aliases expanded the file holds more than"):
        parse_yaml(over, source="s.yaml")


def test_nesting_is_bounded_in_the_file_and_through_aliases() -> None:
    assert parse_yaml("x: " + "[" * MAX_DEPTH + "]" * MAX_DEPTH, source="s.yaml").data
    with pytest.raises(YamlProblem, match="nested more than 50 levels deep"):
        parse_yaml("x: " + "[" * (MAX_DEPTH + 1) + "]" * (MAX_DEPTH + 1), source="s.yaml")
    half = MAX_DEPTH // 2 + 5
    chained = f"a: &a {'[' * half}1{']' * half}\nb: {'[' * half}*a{']' * half}\n"
    with pytest.raises(YamlProblem, match="with its aliases expanded the file nests more than 50 levels deep"):
        parse_yaml(chained, source="s.yaml")


def test_a_pydantic_problem_under_an_alias_is_located() -> None:
    text = EXAMPLE.replace("    bake: 5d\n", "    bake: &b 9999w\n", 1).replace("    bake: 3d\n", "    bake: *b\n", 1)
    found = problems(text)
    assert found[0].startswith("policy.yaml:32: waves[1].bake: '9999w' is longer than 366 days")
    assert any(p.startswith("policy.yaml:35: waves[2].bake:") for p in found)


def test_a_bad_exclusion_selector_is_located_by_lint_without_an_inventory() -> None:
    found = problems(EXAMPLE.replace("    selectors: []", "    selectors: [model]"))
    assert found == ["policy.yaml:62: constraints.exclude.selectors[0]: 'model' is not key=value; "
                     "write it as key=value[,key=value...]"]


def test_the_longest_duration_and_the_largest_count_pass() -> None:
    policy = parse_policy(EXAMPLE.replace("    bake: 5d", "    bake: 366d", 1)
                          .replace("devices_per_day: 300", "devices_per_day: 10000000"))
    assert policy.waves[1].bake == 366 * 86400
    assert "longer than 366 days" in problems(EXAMPLE.replace("    bake: 5d", "    bake: 367d", 1))[0]


def test_a_scenario_problem_names_file_line_and_key(tmp_path: Path) -> None:
    path = tmp_path / "scenario.yaml"
    path.write_text("seed: 1\noffline: .inf\nfaults:\n  - check: kitting\n    probability: 2\n", encoding="utf-8")
    with pytest.raises(ScenarioError) as caught:
        load_scenario(path)
    assert [str(p) for p in caught.value.problems] == [
        "scenario.yaml:2: offline: Input should be a finite number",
        "scenario.yaml:5: faults[0].probability: Input should be less than or equal to 1",
    ]
    assert caught.value.exit_code == 2


def test_control_characters_in_json_inventories_are_refused_too() -> None:
    data = json_text([device_row(1, hostname="PC\u0000X"), device_row(2)]).encode()
    with pytest.raises(InventoryError) as caught:
        parse_inventory(data, source="fleet.json", suffix=".json")
    assert [str(p) for p in caught.value.problems] == [
        "fleet.json:2: hostname: the value holds the control character U+0000 at character 3; remove it and export again"]


def test_the_column_limit_is_exact() -> None:
    rows = [device_row(1)]
    header = csv_text(rows).split("\n")[0]
    extra = MAX_COLUMNS - header.count(",") - 1
    ok = header + "".join(f",x{i}" for i in range(extra)) + "\n" + csv_text(rows).split("\n")[1] + "," * extra + "\n"
    assert len(parse_inventory(ok.encode(), source="f.csv").devices) == 1
    over = header + "".join(f",x{i}" for i in range(extra + 1)) + "\n"
    with pytest.raises(InventoryError, match=r"f\.csv:1: header: 501 columns, more than the 500 allowed"):
        parse_inventory(over.encode(), source="f.csv")
