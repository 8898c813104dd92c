"""Hostile and careless input files, through the CLI as real processes (``tests/hostile/``).

Each case runs ``python -m rollout lint|plan|rehearse`` in a child limited to 1 GB of address
space (so a regression fails with a MemoryError instead of eating the machine) and must end with
exit 2, a located ``file:line: key: problem`` message, no traceback, and nothing written in the
child's working folder. The corpus files are small; the large cases (a 100,000-digit number,
100,000 open brackets, a 600 KB policy, a five-million-column header) are built here.
"""

from __future__ import annotations

import resource
import subprocess
from pathlib import Path

import pytest

from rollout.backends.factory import world_for
from rollout.plan import api
from tests.rollout_builders import cli_env, rollout_cmd

HOSTILE = Path(__file__).resolve().parent / "hostile"
EXAMPLES = api.examples_dir()
MEMORY = 1 << 30
FLEET = HOSTILE / "fleet-ok.csv"


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY, MEMORY))


def run_bounded(cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    """``rollout ARGS`` in ``cwd`` with at most 1 GB; the timeout only keeps a hang from hanging CI."""
    return subprocess.run(rollout_cmd(*args), env=cli_env(), cwd=cwd, capture_output=True, text=True,
                          timeout=300, check=False, preexec_fn=_limit_memory)


def assert_refused(cwd: Path, args: list[str], *expected: str) -> None:
    before = sorted(cwd.rglob("*"))
    result = run_bounded(cwd, *args)
    assert result.returncode == 2, result.stderr[-2000:]
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr
    for text in expected:
        assert text in result.stderr, result.stderr[-2000:]
    assert "nothing was written" in result.stderr
    assert sorted(cwd.rglob("*")) == before, "the command wrote a file"


POLICY_CASES = {
    "policy-bomb-6.yaml": "policy-bomb-6.yaml:7: a5: with its aliases expanded the file holds more than 100,000 values",
    "policy-bomb-7.yaml": "policy-bomb-7.yaml:7: a5: with its aliases expanded the file holds more than 100,000 values",
    "policy-bomb-9.yaml": "policy-bomb-9.yaml:7: a5: with its aliases expanded",
    "policy-bomb-in-sites.yaml": "policy-bomb-in-sites.yaml:10: x-5: with its aliases expanded",
    "policy-merge-bomb.yaml": "policy-merge-bomb.yaml:16: m5.<<: with its aliases expanded",
    "policy-recursive-alias.yaml": "policy-recursive-alias.yaml:10: default_approvals[1]: an alias refers to the "
                                   "mapping or list that contains it",
    "policy-tickets-inf.yaml": "policy-tickets-inf.yaml:85: helpdesk.tickets_per_day: Input should be a finite number",
    "policy-tickets-nan.yaml": "policy-tickets-nan.yaml:84: helpdesk.tickets_per_100_devices: Input should be a "
                               "finite number",
    "policy-tickets-huge.yaml": "policy-tickets-huge.yaml:85: helpdesk.tickets_per_day: 1e+308 is more than "
                                "1,000,000,000",
    "policy-count-huge.yaml": "policy-count-huge.yaml:83: helpdesk.devices_per_day: 99,999,999,999,999,999,999 is "
                              "more than 10,000,000",
    "policy-bake-huge.yaml": "policy-bake-huge.yaml:28: waves[0].bake: '99999999999999w' is longer than 366 days",
    "policy-bake-seconds-huge.yaml": "policy-bake-seconds-huge.yaml:32: waves[1].bake: '99999999999999999' is "
                                     "longer than 366 days",
    "policy-start-far.yaml": "policy-start-far.yaml:65: schedule.start_date: 9999-12-31 is outside 2000-01-01 to "
                             "2999-12-31",
    "policy-date-impossible.yaml": "policy-date-impossible.yaml:65: schedule.start_date: '2027-02-30' cannot be "
                                   "read: day is out of range for month",
    "policy-name-parent.yaml": "policy-name-parent.yaml:3: rollout: '../../x': use letters, digits",
    "policy-name-absolute.yaml": "policy-name-absolute.yaml:3: rollout: '/tmp/zt-world': use letters, digits",
    "policy-name-backslash.yaml": "policy-name-backslash.yaml:3: rollout: '..\\\\..\\\\x': use letters, digits",
    "policy-name-long.yaml": "policy-name-long.yaml:3: rollout: 'zzzzzzzzzzzzzzzzzzzz'... is 300 characters long; "
                             "use at most 64",
    "policy-nul.yaml": "policy-nul.yaml:3: rollout: 'zt\\x00 2027': use letters, digits",
    "policy-site-slash.yaml": "policy-site-slash.yaml:6: sites[0]: 'tokyo/../../x': use letters, digits",
}


@pytest.mark.parametrize("name", sorted(POLICY_CASES))
def test_lint_refuses_a_hostile_policy_with_its_line_and_key(tmp_path: Path, name: str) -> None:
    assert_refused(tmp_path, ["lint", "--policy", str(HOSTILE / name)], POLICY_CASES[name])


@pytest.mark.parametrize("name", ["policy-bake-huge.yaml", "policy-tickets-inf.yaml", "policy-bomb-7.yaml",
                                  "policy-name-parent.yaml"])
def test_plan_refuses_them_too_and_writes_no_plan(tmp_path: Path, name: str) -> None:
    out = tmp_path / "plan.json"
    assert_refused(tmp_path, ["plan", "--inventory", str(FLEET), "--policy", str(HOSTILE / name), "--out", str(out)],
                   POLICY_CASES[name])
    assert not out.exists()


def _example_with(old: str, new: str) -> str:
    text = (EXAMPLES / "policy.yaml").read_text(encoding="utf-8")
    assert old in text
    return text.replace(old, new, 1)


GENERATED_POLICIES = {
    "digits-100000.yaml": (lambda: _example_with("devices_per_day: 300", "devices_per_day: " + "9" * 100_000),
                           "digits-100000.yaml:83: helpdesk.devices_per_day: a value of 100,000 characters is longer "
                           "than the 10,000 allowed"),
    "digits-5000.yaml": (lambda: _example_with("devices_per_day: 300", "devices_per_day: " + "9" * 5000),
                         "digits-5000.yaml:83: helpdesk.devices_per_day: a number of more than 20 digits"),
    "brackets-100000.yaml": (lambda: _example_with("default_approvals: [pm]",
                                                   "default_approvals: " + "[" * 100_000 + "]" * 100_000),
                             "brackets-100000.yaml:9: "),
    "brackets-60.yaml": (lambda: _example_with("default_approvals: [pm]", "default_approvals: " + "[" * 60 + "]" * 60),
                         "brackets-60.yaml:9: default_approvals"),
    "large.yaml": (lambda: _example_with("    devices: []", "    devices: [" + ", ".join(f"D{i:07d}" for i in
                                                                                     range(70_000)) + "]"),
                   "large.yaml: larger than 512 KiB, the most a YAML file may be"),
}


@pytest.mark.parametrize("name", sorted(GENERATED_POLICIES))
def test_lint_refuses_oversized_numbers_nesting_and_files(tmp_path: Path, name: str) -> None:
    make, expected = GENERATED_POLICIES[name]
    inputs = tmp_path / "in"
    inputs.mkdir()
    (inputs / name).write_text(make(), encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    assert_refused(work, ["lint", "--policy", str(inputs / name)], expected)


INVENTORY_CASES = {
    "fleet-nul.csv": "fleet-nul.csv:2: hostname: the value holds the control character U+0000 at character 3",
    "fleet-escape.csv": "fleet-escape.csv:2: hostname: the value holds the control character U+001B at character 3",
    "fleet-line-break.csv": "fleet-line-break.csv:2: hostname: the value holds the control character U+000A",
    "fleet-field-long.csv": "fleet-field-long.csv:2: hostname: the value is 5,014 characters long, more than the "
                            "4,096 allowed",
}


@pytest.mark.parametrize("name", sorted(INVENTORY_CASES))
def test_plan_refuses_control_characters_and_huge_fields_in_the_inventory(tmp_path: Path, name: str) -> None:
    out = tmp_path / "plan.json"
    assert_refused(tmp_path, ["plan", "--inventory", str(HOSTILE / name), "--policy", str(EXAMPLES / "policy.yaml"),
                              "--out", str(out)], INVENTORY_CASES[name])


def test_a_five_million_column_header_is_refused_before_it_is_split(tmp_path: Path) -> None:
    inputs = tmp_path / "in"
    inputs.mkdir()
    wide = inputs / "wide.csv"
    wide.write_text("device_id,hostname," + ",".join(f"c{i}" for i in range(5_000_000)) + "\nD1,h\n",
                    encoding="utf-8")
    work = tmp_path / "work"
    work.mkdir()
    assert_refused(work, ["lint", "--inventory", str(wide), "--policy", str(EXAMPLES / "policy.yaml")],
                   "wide.csv:1: header: 5,000,002 columns, more than the 500 allowed")


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A plan of the corpus's valid fleet, for the scenario cases."""
    path = tmp_path_factory.mktemp("plan") / "plan.json"
    api.write_plan(api.make_plan(FLEET, EXAMPLES / "policy.yaml").plan, path)
    return path


SCENARIO_CASES = {
    "scenario-bomb-7.yaml": "scenario-bomb-7.yaml:7: a5: with its aliases expanded the file holds more than 100,000",
    "scenario-probability-nan.yaml": "scenario-probability-nan.yaml:14: faults[0].probability: Input should be a "
                                     "finite number",
    "scenario-delay-huge.yaml": "scenario-delay-huge.yaml:5: checkin_delay.max: '99999999999999w' is longer than 366 "
                                "days",
    "scenario-bad-selector.yaml": "scenario-bad-selector.yaml:12: faults[0].selector: 'dynabook G83' is not key=value",
}


@pytest.mark.parametrize("name", sorted(SCENARIO_CASES))
def test_rehearse_refuses_a_hostile_scenario_and_creates_no_state(tmp_path: Path, planned: Path, name: str) -> None:
    state = tmp_path / "state.db"
    assert_refused(tmp_path, ["rehearse", "--plan", str(planned), "--inventory", str(FLEET), "--scenario",
                              str(HOSTILE / name), "--state", str(state)], SCENARIO_CASES[name])
    assert not state.exists()


def test_the_corpus_baseline_is_valid(tmp_path: Path) -> None:
    """The hostile files are one change away from inputs that pass: the change is what is refused."""
    result = run_bounded(tmp_path, "lint", "--inventory", str(FLEET), "--policy", str(EXAMPLES / "policy.yaml"))
    assert result.returncode == 0, result.stderr


@pytest.mark.parametrize("name", ["../../x", "/tmp/zt-world", "..", "a/b", "..\\..\\x", "x" * 300, "zt\x00"])
def test_the_simulator_world_stays_in_the_state_folder_whatever_the_rollout_name(name: str) -> None:
    world = world_for("dynamodb://zt-state?region=ap-northeast-1", name)
    assert world.parent == Path(".rollout")
    assert world.name.endswith(".world.db") and "/" not in world.name and "\\" not in world.name
    assert world_for("dynamodb://t", name) == world  # stable: the next `rollout run` finds the same file


def test_a_plain_rollout_name_keeps_its_world_file_name() -> None:
    assert world_for("dynamodb://t", "zt-2027") == Path(".rollout") / "zt-2027.world.db"


def test_every_yaml_file_is_read_by_the_bounded_loader() -> None:
    """No module but ``rollout.plan.yamlsafe`` imports PyYAML: a new YAML input cannot skip the limits."""
    package = Path(api.__file__).resolve().parent.parent
    importers = sorted(str(p.relative_to(package.parent)) for p in package.rglob("*.py")
                       if p.name != "yamlsafe.py" and any(line.strip().startswith(("import yaml", "from yaml"))
                                                          for line in p.read_text(encoding="utf-8").splitlines()))
    assert importers == []
