"""Checks on the project itself: every command documented, the shipped examples what they claim."""

from __future__ import annotations

import io
from pathlib import Path

import click

from rollout.cli.main import cli
from rollout.plan import api
from rollout.plan.fleet import EXTRA_COLUMNS, iter_fleet
from rollout.plan.inventory import write_inventory_csv

ROOT = Path(__file__).resolve().parent.parent


def all_commands(group: click.Group, prefix: str = "rollout") -> list[tuple[str, click.Command]]:
    out: list[tuple[str, click.Command]] = []
    for name, command in sorted(group.commands.items()):
        out.append((f"{prefix} {name}", command))
        if isinstance(command, click.Group):
            out += all_commands(command, f"{prefix} {name}")
    return out


def test_every_command_has_help_and_is_in_the_readme() -> None:
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    commands = all_commands(cli)
    assert len(commands) >= 7
    for path, command in commands:
        assert command.help, f"{path} has no help text"
        if not isinstance(command, click.Group) or command.invoke_without_command:
            assert f"`{path}" in readme, f"{path} is not documented in the README"


def test_the_example_fleet_is_what_the_generator_makes() -> None:
    shipped = (api.examples_dir() / api.EXAMPLE_FLEET).read_text(encoding="utf-8")
    buffer = io.StringIO()
    write_inventory_csv(iter_fleet(api.EXAMPLE_FLEET_SIZE, api.EXAMPLE_SEED), buffer, EXTRA_COLUMNS)
    assert shipped == buffer.getvalue(), "regenerate with: rollout fleet generate --out examples/fleet-10000.csv"


def test_the_readme_opens_with_the_two_commands() -> None:
    lines = (ROOT / "README.md").read_text(encoding="utf-8").splitlines()
    block = lines[lines.index("```sh") + 1: lines.index("```")]
    assert [line.split()[:2] for line in block] == [["make", "demo"], ["make", "test"]]
    ci = (ROOT / ".ci" / "run").read_text(encoding="utf-8")
    assert "make test" in ci
