"""The policy file: every problem reported with its line and key path; sizes and durations parsed."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner

from rollout.cli.main import cli
from rollout.core.gatespec import parse_duration
from rollout.errors import PolicyError
from rollout.plan.policy import WaveSize, load_policy, parse_policy
from tests.conftest import EXAMPLE_POLICY

EXAMPLE = EXAMPLE_POLICY.read_text(encoding="utf-8")


def problems_of(text: str) -> list[str]:
    with pytest.raises(PolicyError) as caught:
        parse_policy(text, source="policy.yaml")
    return [str(p) for p in caught.value.problems]


def test_example_policy_is_valid() -> None:
    policy = load_policy(EXAMPLE_POLICY)
    assert [w.name for w in policy.waves][:2] == ["canary", "wave-1"]
    assert policy.waves[0].bake == 7 * 86400
    assert policy.approvals_for(policy.waves[0]) == ("pm", "security")
    assert policy.approvals_for(policy.waves[1]) == ("pm",)
    assert policy.constraints.site_cap("tokyo") == 1500
    assert policy.constraints.site_cap("sendai") == 1200


@pytest.mark.parametrize(
    ("old", "new", "expected"),
    [
        ("size: 10%", "size: 10 percent",
         "policy.yaml:34: waves[2].size: '10 percent' is not a count, a percentage such as '5%', or 'rest'"),
        ("size: 10%", "size: 0", "policy.yaml:34: waves[2].size: a count must be at least 1"),
        ("size: 10%", "size: 120%", "policy.yaml:34: waves[2].size: '120%': a percentage must be above 0% and at most 100%"),
        ("tokyo: 1500", "tokyo: lots",
         "policy.yaml:53: constraints.max_per_site_per_wave.tokyo: Input should be a valid integer, "
         "unable to parse string as an integer"),
        ("devices_per_day: 300", "devices_per_dy: 300",
         "policy.yaml:83: helpdesk.devices_per_dy: Extra inputs are not permitted"),
        ("- name: wave-5", "- name: wave-4", "policy.yaml:42: waves[5].name: duplicate of waves[4].name"),
        ("sites: [tokyo, osaka]\n      tags", "sites: [tokyo, kyoto]\n      tags",
         "policy.yaml:56: constraints.separate_sites[0].sites: unknown site 'kyoto'"),
        ("size: 3%", "size: rest", "policy.yaml:31: waves[1].size: 'rest' is only allowed for the last wave"),
        ("min_size: 20", "min_size: 0", "policy.yaml:20: cohorts.min_size: Input should be greater than or equal to 1"),
        ("name: wave-1", "name: wave 1",
         "policy.yaml:30: waves[1].name: 'wave 1': use letters, digits, '-', '_' or '.' (it is used on the command line)"),
    ],
)
def test_each_mistake_is_named_with_line_and_key_path(old: str, new: str, expected: str) -> None:
    assert old in EXAMPLE
    assert expected in problems_of(EXAMPLE.replace(old, new, 1))


def test_every_problem_is_listed_at_once() -> None:
    text = EXAMPLE.replace("size: 10%", "size: ten").replace("bake: 5d", "bake: soon").replace(
        "devices_per_day: 300", "devices_per_day: -1")
    found = problems_of(text)
    assert len(found) == 3
    assert [p.split(": ")[1] for p in found] == ["waves[1].bake", "waves[2].size", "helpdesk.devices_per_day"]


def test_yaml_syntax_error_names_the_line() -> None:
    assert problems_of("rollout: x\nwaves: [\n")[0].startswith("policy.yaml:3: not valid YAML")


def test_percentages_over_100_are_refused() -> None:
    text = EXAMPLE.replace("size: rest", "size: 30%")
    assert "policy.yaml:24: waves: wave percentages add up to 113%, more than 100%" in problems_of(text)


@pytest.mark.parametrize(("raw", "seconds"), [("90m", 5400), ("36h", 129600), ("7d", 604800), ("2w", 1209600), (0, 0)])
def test_durations(raw: object, seconds: int) -> None:
    assert parse_duration(raw) == seconds


@pytest.mark.parametrize(("raw", "eligible", "devices"), [(50, 9990, 50), ("5%", 9990, 500), ("3%", 10000, 300),
                                                          ("0.5%", 101, 1), ("rest", 10000, 1234)])
def test_wave_sizes_resolve(raw: object, eligible: int, devices: int) -> None:
    assert WaveSize.parse(raw).resolve(eligible, 1234) == devices


def test_lint_reports_policy_problems_with_exit_2(tmp_path: Path) -> None:
    bad = tmp_path / "policy.yaml"
    bad.write_text(EXAMPLE.replace("size: 10%", "size: lots"), encoding="utf-8")
    result = CliRunner().invoke(cli, ["lint", "--policy", str(bad)])
    assert result.exit_code == 2
    assert "policy.yaml:34: waves[2].size: 'lots' is not a count" in result.output
    ok = CliRunner().invoke(cli, ["lint", "--policy", str(EXAMPLE_POLICY)])
    assert ok.exit_code == 0, ok.output
    assert ok.output == f"{EXAMPLE_POLICY}: ok\n"


def test_a_key_given_twice_is_an_error_not_a_silent_overwrite() -> None:
    text = EXAMPLE.replace("    selectors: []\n", "    selectors: []\n    selectors: [tag=lab]\n")
    assert problems_of(text) == ["policy.yaml:63: constraints.exclude.selectors: duplicate of line 62"]
