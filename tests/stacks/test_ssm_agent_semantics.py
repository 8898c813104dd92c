"""The kitting and rollback documents, run the way the SSM Agent runs them (rules and their source files in
``tests/stacks/ssm_agent.py``), with each script read by the PowerShell grammar (``tests/stacks/powershell.py``).

What must hold whatever step fails: nothing that removes legacy access (the proxy, the legacy VPN)
runs after it, and the check-in still runs and reports the failure. A migration that leaves a device
with neither the old access nor the new one is the worst failure a rollout can cause.
"""

from __future__ import annotations

import re
from typing import Any

import pytest
import yaml

from stacks.config import SiteConfig
from stacks.documents import render_kitting_document, render_rollback_document

from .builders import make_site_config
from .powershell import commands, foreach_loops
from .ssm_agent import MODIFIERS, STEP_KEYS, run_steps, string_prop

TABLE = "zt-rollout-sendai-checkins"
COMPLETED = "completed-steps.txt"

VARIANTS: dict[str, tuple[str, SiteConfig]] = {
    "kitting-retires-closed-network": ("kitting", make_site_config(closedNetwork=False)),
    "kitting-keeps-closed-network": ("kitting", make_site_config(closedNetwork=True,
                                                                 localBreakoutDomains=["outlook.office.com"])),
    "kitting-jumpcloud": ("kitting", make_site_config(closedNetwork=False, deviceTrustProvider="jumpcloud")),
    "rollback": ("rollback", make_site_config()),
}


def steps_of(variant: str) -> list[dict[str, Any]]:
    kind, config = VARIANTS[variant]
    render = render_kitting_document if kind == "kitting" else render_rollback_document
    steps: list[dict[str, Any]] = yaml.safe_load(render(config, checkin_table_name=TABLE))["mainSteps"]
    return steps


def script(step: dict[str, Any]) -> str:
    return "\n".join(step["inputs"]["runCommand"])


def removes_legacy_access(step: dict[str, Any]) -> bool:
    """The step deletes the legacy VPN connection, switches the proxy off or deletes the proxy server."""
    for command in commands(script(step)):
        if command.name == "Remove-VpnConnection":
            return True
        if command.name == "Set-ItemProperty" and command.named.get("Name") == "ProxyEnable" \
                and command.named.get("Value") == "0":
            return True
        if command.name == "Remove-ItemProperty" and command.named.get("Name") == "ProxyServer":
            return True
    return False


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_steps_carry_only_keys_the_agent_reads_and_modifiers_in_inputs(variant: str) -> None:
    for step in steps_of(variant):
        assert set(step) <= STEP_KEYS, f"{step['name']}: the agent ignores {sorted(set(step) - STEP_KEYS)} here"
        assert step["precondition"] == {"StringEquals": ["platformType", "Windows"]}, step["name"]
    steps = steps_of(variant)
    assert all(string_prop(s["inputs"], "onFailure") == "exit" for s in steps[:-1])
    assert string_prop(steps[-1]["inputs"], "finallyStep") == "true"
    assert all(string_prop(s["inputs"], m) == "" for s in steps[:-1] for m in MODIFIERS if m != "onFailure")


def test_the_simulated_agent_follows_its_own_rules() -> None:
    """The port itself: a step-level onFailure is ignored; finallyStep counts only on the last step."""
    plain = {"action": "aws:runPowerShellScript", "inputs": {}}
    ignored = [{**plain, "name": "a", "onFailure": "exit"}, {**plain, "name": "b"}]
    assert run_steps(ignored, {0: "Failed"}) == [0, 1]
    exiting = [{**plain, "name": "a", "inputs": {"onFailure": "exit"}}, {**plain, "name": "b"},
               {**plain, "name": "c", "inputs": {"finallyStep": True}}]
    assert run_steps(exiting, {0: "Failed"}) == [0, 2]
    assert run_steps(exiting, {0: "TimedOut"}) == [0, 1, 2]
    not_last = [exiting[0], {**plain, "name": "b", "inputs": {"finallyStep": True}}, {**plain, "name": "c"}]
    assert run_steps(not_last, {0: "Failed"}) == [0]


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_after_any_failed_step_nothing_removes_legacy_access_and_the_check_in_runs(variant: str) -> None:
    steps = steps_of(variant)
    check_in = len(steps) - 1
    assert steps[check_in]["name"] == "writeCheckIn"
    for failed in range(check_in):
        ran = run_steps(steps, {failed: "Failed"})
        after = [steps[i]["name"] for i in ran if i > failed and removes_legacy_access(steps[i])]
        assert after == [], f"{steps[failed]['name']} failed, and then {after} removed legacy access"
        assert ran[-1] == check_in, f"{steps[failed]['name']} failed and the check-in did not run"
    assert run_steps(steps, {}) == list(range(len(steps)))


def test_the_retiring_document_does_remove_legacy_access_so_the_rule_above_bites() -> None:
    steps = steps_of("kitting-retires-closed-network")
    assert [s["name"] for s in steps if removes_legacy_access(s)] == ["applySiteSettings"]
    assert not any(removes_legacy_access(s) for s in steps_of("kitting-keeps-closed-network"))


def completion_recorded(step: dict[str, Any]) -> bool:
    """The step's last statement appends its own name to completed-steps.txt."""
    last = [line for line in script(step).splitlines() if line.strip()][-1]
    (command, *_) = commands(last)
    return command.name == "Add-Content" and command.named.get("Value") == step["name"] and COMPLETED in last


def required_steps(text: str, before: int) -> list[str]:
    """The step names of the completion check (a foreach over completed-steps.txt) that starts before ``before``."""
    loops = [body for at, body in foreach_loops(text) if at < before and "-notcontains $step" in body]
    assert len(loops) == 1, loops
    return re.findall(r"'([A-Za-z]+)'", loops[0].split(")", 1)[0])


@pytest.mark.parametrize("variant", sorted(VARIANTS))
def test_a_timed_out_step_never_lets_legacy_access_go_and_is_reported(variant: str) -> None:
    """The agent does not stop after a step that timed out (it ends TimedOut, not Failed), so the step
    that removes legacy access runs only when every step before it recorded its completion, and the
    check-in fails when any step did not."""
    steps = steps_of(variant)
    names = [s["name"] for s in steps]
    assert all(completion_recorded(s) for s in steps[:-1]), [s["name"] for s in steps[:-1] if not completion_recorded(s)]
    for index, step in enumerate(steps):
        if removes_legacy_access(step):
            first = min(c.start for c in commands(script(step)) if c.name in (
                "Remove-VpnConnection", "Set-ItemProperty", "Remove-ItemProperty"))
            assert required_steps(script(step), first) == names[:index]
            assert run_steps(steps, {index - 1: "TimedOut"})[index - 1:index + 1] == [index - 1, index], \
                "the agent ran on after the timeout: the completion check is what stops the removal"
    check_in = script(steps[-1])
    assert required_steps(check_in, len(check_in)) == names[:-1]
