"""``rollout diff``: exactly the moved devices, resized waves, voided approvals, coverage and dates."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from rollout.cli.main import cli
from rollout.plan.diff import diff_plans
from rollout.plan.planfile import PlanDoc
from rollout.plan.planner import PLAN_SCHEMA


def doc(waves: dict[str, list[str]], completion: str = "2027-03-01", covered: int = 10) -> PlanDoc:
    return PlanDoc.model_validate({
        "schema_": PLAN_SCHEMA, "rollout": "r", "plan_hash": json.dumps(waves, sort_keys=True) + completion,
        "schedule": {"start_date": "2027-01-11", "projected_completion": completion},
        "coverage": {"cohorts_total": 12, "cohorts_covered": covered, "fleet_share_covered": covered / 12},
        "waves": [{"index": i, "name": n, "canary": i == 0, "hash": "h-" + ",".join(d), "size": len(d),
                   "approvals": ["pm"], "bake_seconds": 0, "start": "", "end": "", "bake_until": "", "devices": d}
                  for i, (n, d) in enumerate(waves.items())],
    })


def test_exactly_the_moved_devices_are_reported() -> None:
    old = doc({"canary": ["a"], "w1": ["b", "c"], "w2": ["d", "e"]})
    new = doc({"canary": ["a"], "w1": ["b", "d"], "w2": ["c", "e", "f"]}, completion="2027-03-15", covered=12)
    d = diff_plans(old, new)
    assert d.moved == (("c", "w1", "w2"), ("d", "w2", "w1"))
    assert d.added == (("f", "w2"),)
    assert d.removed == ()
    assert [(w.name, w.old_size, w.new_size, w.changed) for w in d.waves] == [
        ("canary", 1, 1, False), ("w1", 2, 2, True), ("w2", 2, 3, True)]
    assert d.voided == ("w1", "w2")
    assert d.completion_shift_days == 14
    assert d.new_coverage[:2] == (12, 12)


def test_identical_plans_have_no_change() -> None:
    waves = {"canary": ["a"], "w1": ["b"]}
    d = diff_plans(doc(waves), doc(waves))
    assert d.identical and d.moved == () and d.voided == ()


def write_plan(runner: CliRunner, inventory: Path, policy: Path, out: Path) -> dict[str, Any]:
    result = runner.invoke(cli, ["plan", "--inventory", str(inventory), "--policy", str(policy), "--out", str(out),
                                 "--format", "json"])
    assert result.exit_code == 0, result.output
    return json.loads(out.read_text(encoding="utf-8"))


def test_cli_diff_of_a_policy_change(tmp_path: Path, fleet_csv: Callable[..., Path],
                                     write_policy: Callable[..., Path]) -> None:
    runner = CliRunner()
    inventory = fleet_csv(3000, 4)
    waves = [{"name": "canary", "canary": True, "size": 40, "approvals": ["pm", "security"]},
             {"name": "wave-1", "size": "5%"}, {"name": "wave-2", "size": "30%"}, {"name": "final", "size": "rest"}]
    old = write_plan(runner, inventory, write_policy("old.yaml", waves=waves), tmp_path / "old.json")
    waves[1] = {"name": "wave-1", "size": "8%"}
    new = write_plan(runner, inventory, write_policy("new.yaml", waves=waves), tmp_path / "new.json")
    before = {d: w["name"] for w in old["waves"] for d in w["devices"]}
    after = {d: w["name"] for w in new["waves"] for d in w["devices"]}
    expected = sorted(d for d in before if before[d] != after[d])
    assert expected, "growing wave-1 moves devices into it"

    result = runner.invoke(cli, ["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--format", "json"])
    assert result.exit_code == 0, result.output
    out = json.loads(result.output)
    assert [m["device_id"] for m in out["moved"]] == expected
    assert out["approvals_voided"] == [w["name"] for w in old["waves"]
                                       if w["hash"] != {x["name"]: x["hash"] for x in new["waves"]}[w["name"]]]
    assert "canary" not in out["approvals_voided"]
    sizes = {w["name"]: (w["old_size"], w["new_size"]) for w in out["waves"]}
    assert sizes["wave-1"] == (150, 240)

    md = runner.invoke(cli, ["diff", str(tmp_path / "old.json"), str(tmp_path / "new.json"), "--format", "markdown"])
    assert md.exit_code == 0
    assert f"**{len(expected):,}** devices moved" in md.output
    assert "| wave-1 | 150 | 240 | +90 | **voided** (hash changed) |" in md.output
    assert "| canary | 40 | 40 | 0 | kept |" in md.output


def test_diff_of_a_file_that_is_not_a_plan_says_so(tmp_path: Path) -> None:
    bad = tmp_path / "x.json"
    bad.write_text('{"schema": "other"}', encoding="utf-8")
    result = CliRunner().invoke(cli, ["diff", str(bad), str(bad)])
    assert result.exit_code == 2
    assert "x.json: schema: expected 'zt-rollout/plan/v1'" in result.output
