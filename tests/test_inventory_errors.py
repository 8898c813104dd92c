"""Bad inventories through the real CLI: every problem as ``file:line: field: what``, exit 2, nothing written."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from rollout.cli.main import cli
from tests.inventory_builders import csv_text, device_row, json_text, jsonl_text

PLAN_BEFORE = b'{"plan_hash": "the reviewed plan"}\n'


def rows(n: int = 4, **changes: dict[str, str]) -> list[dict[str, str]]:
    """``n`` valid rows; ``changes={"3": {...}}`` overrides fields of row 3 (file line 4 in CSV)."""
    return [device_row(i, **changes.get(str(i), {})) for i in range(1, n + 1)]


def without(column: str, text: str) -> str:
    """CSV text with one column dropped from the header and every row."""
    lines = [line.split(",") for line in text.splitlines()]
    at = lines[0].index(column)
    return "".join(",".join(cells[:at] + cells[at + 1 :]) + "\n" for cells in lines)


def extra_field_on(line: int, text: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line - 1] = lines[line - 1].rstrip("\n") + ",surplus\n"
    return "".join(lines)


def broken_line(line: int, text: str, replacement: str) -> str:
    lines = text.splitlines(keepends=True)
    lines[line - 1] = replacement + "\n"
    return "".join(lines)


CASES: dict[str, tuple[str, str, list[str]]] = {
    "missing column": ("fleet.csv", without("serial", csv_text(rows())),
                       ["fleet.csv:1: serial: missing column in the header"]),
    "empty field": ("fleet.csv", csv_text(rows(**{"2": {"hostname": ""}})), ["fleet.csv:3: hostname: empty"]),
    "missing field in JSON": ("fleet.json", json_text([{k: v for k, v in r.items() if k != "model"} if r["serial"]
                              .endswith("2") else r for r in rows()]), ["fleet.json:3: model: missing"]),
    "empty user": ("fleet.csv", csv_text(rows(**{"1": {"user": " "}})), ["fleet.csv:2: user: empty"]),
    "user not a UPN": ("fleet.csv", csv_text(rows(**{"1": {"user": "髙橋 翔"}})),
                       ["fleet.csv:2: user: '髙橋 翔' is not a UPN or e-mail address (name@domain)"]),
    "user with two @": ("fleet.csv", csv_text(rows(**{"4": {"user": "a@b@example.co.jp"}})),
                        ["fleet.csv:5: user: 'a@b@example.co.jp' is not a UPN or e-mail address (name@domain)"]),
    "duplicate device_id": ("fleet.csv", csv_text(rows(**{"3": {"device_id": "PC-髙﨑-001"}})),
                            ["fleet.csv:4: device_id: duplicate of line 2"]),
    "duplicate serial, other case": ("fleet.csv", csv_text(rows(**{"3": {"serial": "sn00001"}})),
                                     ["fleet.csv:4: serial: duplicate of line 2"]),
    "unknown site": ("fleet.csv", csv_text(rows(**{"2": {"site": "kyoto"}})),
                     ["fleet.csv:3: site: unknown site 'kyoto' (the policy knows: osaka, tokyo)"]),
    "too many fields": ("fleet.csv", extra_field_on(3, csv_text(rows())),
                        ["fleet.csv:3: row: row has 13 fields, the header has 12"]),
    "bad JSON record": ("fleet.json", broken_line(3, json_text(rows()), '{"device_id": "PC-2",},'),
                        ["fleet.json:3: row: not valid JSON: Expecting property name enclosed in double quotes"]),
    "JSON Lines": ("fleet.jsonl", broken_line(4, broken_line(2, jsonl_text(rows()), "{oops"), "[1, 2]"),
                   ["fleet.jsonl:2: row: not valid JSON: Expecting property name enclosed in double quotes",
                    "fleet.jsonl:4: row: expected a JSON object"]),
    "several problems in one file": (
        "fleet.csv",
        extra_field_on(6, csv_text(rows(6, **{"1": {"user": ""}, "3": {"device_id": "PC-髙﨑-001", "site": "kyoto"},
                                               "4": {"serial": "Sn00002"}}))),
        ["fleet.csv:2: user: empty",
         "fleet.csv:4: site: unknown site 'kyoto' (the policy knows: osaka, tokyo)",
         "fleet.csv:4: device_id: duplicate of line 2",
         "fleet.csv:5: serial: duplicate of line 3",
         "fleet.csv:6: row: row has 13 fields, the header has 12"]),
    "problems before a JSON syntax error are kept": (
        "fleet.json", broken_line(5, json_text(rows(**{"1": {"user": "nobody"}})), '{"device_id": '),
        ["fleet.json:2: user: 'nobody' is not a UPN or e-mail address (name@domain)",
         "fleet.json:6: row: not valid JSON: Expecting value"]),
}


@pytest.fixture
def policy(write_policy: Callable[..., Path]) -> Path:
    return write_policy(sites=["tokyo", "osaka"])


def problems_in(stderr: str) -> list[str]:
    """The problem lines of an InventoryError as the CLI prints them (indented by two spaces)."""
    return [line[2:] for line in stderr.splitlines() if line.startswith("  ")]


def plan(inventory: Path, policy: Path, out: Path) -> Result:
    return CliRunner().invoke(cli, ["plan", "--inventory", str(inventory), "--policy", str(policy),
                                    "--out", str(out), "--format", "json"], catch_exceptions=False)


@pytest.mark.parametrize("name", list(CASES))
def test_each_bad_input_lists_its_problems_exits_2_and_writes_nothing(tmp_path: Path, policy: Path,
                                                                      name: str) -> None:
    filename, text, expected = CASES[name]
    inventory = tmp_path / filename
    inventory.write_text(text, encoding="utf-8")
    out = tmp_path / "plan.json"
    result = plan(inventory, policy, out)
    assert result.exit_code == 2
    assert problems_in(result.stderr) == expected
    count = f"{len(expected)} problem{'s' if len(expected) > 1 else ''}"
    assert result.stderr.startswith(f"error: {count} in inventory {filename}:\n")
    assert result.stderr.endswith("Fix the lines above and run the command again; nothing was written.\n")
    assert result.stdout == ""
    assert not out.exists()


def test_the_baseline_of_the_cases_is_a_valid_inventory(tmp_path: Path, policy: Path) -> None:
    # Guards the table above: each case's file differs from a file that plans.
    inventory = tmp_path / "fleet.csv"
    inventory.write_text(csv_text(rows(6)), encoding="utf-8")
    result = plan(inventory, policy, tmp_path / "plan.json")
    assert result.exit_code == 0, result.output
    assert (tmp_path / "plan.json").exists()


def test_an_existing_plan_is_left_byte_for_byte_unchanged(tmp_path: Path, policy: Path) -> None:
    _, text, _ = CASES["several problems in one file"]
    inventory = tmp_path / "fleet.csv"
    inventory.write_text(text, encoding="utf-8")
    out = tmp_path / "plan.json"
    out.write_bytes(PLAN_BEFORE)
    assert plan(inventory, policy, out).exit_code == 2
    assert out.read_bytes() == PLAN_BEFORE
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fleet.csv", "plan.json", "policy.yaml"]


def test_lint_reports_the_same_problems(tmp_path: Path, policy: Path) -> None:
    filename, text, expected = CASES["several problems in one file"]
    inventory = tmp_path / filename
    inventory.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["lint", "--inventory", str(inventory), "--policy", str(policy)])
    assert (result.exit_code, problems_in(result.stderr)) == (2, expected)


def test_the_installed_console_script_exits_2_with_the_problems(tmp_path: Path, policy: Path) -> None:
    filename, text, expected = CASES["several problems in one file"]
    inventory = tmp_path / filename
    inventory.write_bytes(text.encode("cp932"))
    out = tmp_path / "plan.json"
    script = Path(sys.executable).parent / "rollout"  # [project.scripts] rollout = "rollout.cli.main:main"
    done = subprocess.run([str(script), "plan", "--inventory", str(inventory), "--policy", str(policy),
                           "--out", str(out)], capture_output=True, timeout=120, check=False)
    stderr = done.stderr.decode("utf-8")
    assert (done.returncode, problems_in(stderr)) == (2, expected)
    assert not out.exists()
