"""Every PowerShell script of the documents parses with a real PowerShell grammar (tree-sitter-powershell),
for every example stack and each document variant, so a syntax error fails CI and not a device."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from stacks.config import SiteConfig, load_site_config
from stacks.documents import render_kitting_document, render_rollback_document

from .builders import make_site_config
from .conftest import EXAMPLE_SITES, stack_config
from .powershell import syntax_errors


def example_config(site: str) -> SiteConfig:
    return load_site_config(stack_config(site).get, stack=site)


CONFIGS: dict[str, SiteConfig] = {
    **{site: example_config(site) for site in EXAMPLE_SITES},
    "retires-closed-network": make_site_config(closedNetwork=False),
    "jumpcloud": make_site_config(deviceTrustProvider="jumpcloud", closedNetwork=True),
}


def scripts(config: SiteConfig) -> list[tuple[str, str]]:
    out: list[tuple[str, str]] = []
    for render in (render_kitting_document, render_rollback_document):
        document: dict[str, Any] = yaml.safe_load(render(config, checkin_table_name="zt-rollout-x-checkins"))
        out += [(f"{render.__name__}:{step['name']}", "\n".join(step["inputs"]["runCommand"]))
                for step in document["mainSteps"] if step["action"] == "aws:runPowerShellScript"]
    return out


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_every_script_parses(name: str) -> None:
    found = scripts(CONFIGS[name])
    assert found, "no PowerShell step rendered"
    problems = {step: errors for step, text in found if (errors := syntax_errors(text))}
    assert problems == {}


@pytest.mark.parametrize("broken", [
    "if ($x -eq 1) { Write-Output 'a' ",
    "$item = @'\n{}\n'@\nWrite-Output ('x'",
    "foreach ($pair in 'a,b'.Split(',') { $pair }",
    "try { Remove-Item x } catch {",
])
def test_the_grammar_rejects_broken_powershell(broken: str) -> None:
    assert syntax_errors(broken)
