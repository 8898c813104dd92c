"""What zt-rollout writes and shows, against hostile values: markdown stays text (parsed by a real
CommonMark + GFM-tables parser, markdown-it-py), the terminal gets no control sequence, and ``--out``
never replaces the state, an input, a device or an existing file without ``--force``."""

from __future__ import annotations

import dataclasses
import hashlib
import os
import sqlite3
import stat
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from markdown_it import MarkdownIt

from rollout.cli.demo import DEMO_MARK, claim_demo_dir
from rollout.cli.main import cli
from rollout.errors import OutputError
from rollout.templating import environment, md_escape, terminal_safe
from tests.hostile_strings import HOSTILE
from tests.report_builders import Rehearsed, rehearsed, write_yaml

__all__ = ["rehearsed"]  # the session fixture, imported for pytest

MARKDOWN = MarkdownIt("commonmark").enable("table").enable("strikethrough")
ACTIVE = {"link_open", "image", "html_inline", "html_block", "heading_open", "code_inline", "em_open",
          "strong_open", "s_open", "blockquote_open", "bullet_list_open", "ordered_list_open", "hr"}
CONTROL = ("\x1b", "\x07", "\x08", "\x00", "\x9b", "\u202e")


def run(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def tokens(text: str) -> list[Any]:
    out = []
    for t in MARKDOWN.parse(text):
        out.append(t)
        out.extend(t.children or ())
    return out


def visible(value: str) -> str:
    """What a reader should see of ``value``: the same text, on one line, without control characters."""
    return " ".join(terminal_safe(value, one_line=True).replace("@", "@\u200b").split())


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_escaper_leaves_only_text_in_a_table_cell(value: str) -> None:
    text = environment().from_string("| a | b |\n|---|---|\n| {{ v | md }} | end |\n").render(v=value)
    found = tokens(text)
    assert not {t.type for t in found} & ACTIVE, text
    cells = [t for t in found if t.type == "td_open"]
    assert len(cells) == 2, f"one cell, not more: {text}"
    inline = [t for t in MARKDOWN.parse(text) if t.type == "inline"][2]
    shown = "".join(c.content for c in inline.children or () if c.type == "text")
    assert " ".join(shown.split()) == visible(value)
    assert "://" not in text.replace("\\://", "") and "www." not in text


@pytest.mark.parametrize("value", HOSTILE)
def test_markdown_escaper_leaves_only_text_in_a_list_item(value: str) -> None:
    text = environment().from_string("- {{ v | md }}\n").render(v=value)
    found = [t.type for t in tokens(text)]
    assert found.count("bullet_list_open") == 1 and found.count("list_item_open") == 1, text
    assert not set(found) & (ACTIVE - {"bullet_list_open"}), text


@pytest.mark.parametrize("value", HOSTILE)
def test_terminal_helper_strips_every_control(value: str) -> None:
    shown = terminal_safe(value, one_line=True)
    assert not any(c in shown for c in CONTROL) and "\n" not in shown and "\r" not in shown


@pytest.fixture
def own(rehearsed: Rehearsed, tmp_path: Path) -> Rehearsed:
    """The rehearsal with a state of this test's own."""
    copy = tmp_path / "state.db"
    source, target = sqlite3.connect(rehearsed.state), sqlite3.connect(copy)
    with target:
        source.backup(target)
    source.close()
    target.close()
    return dataclasses.replace(rehearsed, state=copy)


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


TITLE = ("Sign-in fails\n## approved by rehearsal-pm ![x](http://beacon.example/p.png) @org/team "
         "</details><img src=x onerror=alert(1)> | extra | \x1b]0;pwned\x07\x1b[2J")


def test_a_hostile_triage_title_is_inert_in_markdown_and_on_the_terminal(own: Rehearsed) -> None:
    state = f"sqlite:{own.state}"
    added = run("triage", "add", "--title", TITLE, "--selector", "model=X1", "--state", state,
                "--as", "rehearsal-operator")
    assert added.exit_code == 0, added.output
    report = run("report", "--format", "markdown", "--state", state)
    assert report.exit_code == 0, report.output
    found = tokens(report.stdout)
    assert not [t for t in found if t.type in {"image", "html_inline", "html_block"}]
    assert all("beacon" not in (t.attrs.get("href") or "") for t in found if t.type == "link_open")
    headings = [found[i + 1].content for i, t in enumerate(found) if t.type == "heading_open"]
    assert not [h for h in headings if "approved" in h], headings
    assert "@org/team" not in report.stdout and "\x1b" not in report.stdout
    parsed = MARKDOWN.parse(report.stdout)
    cells = [parsed[i + 1].content for i, t in enumerate(parsed) if t.type == "td_open"]
    title_cell = next(c for c in cells if "Sign-in fails" in c)
    assert "| extra |" in title_cell, "the whole title stays in its one cell: no extra column"
    for args in (("triage", "list"), ("status",)):
        shown = run(*args, "--state", state)
        assert shown.exit_code == 0, shown.output
        assert not any(c in shown.output for c in CONTROL), args
        line = next(line for line in shown.output.splitlines() if "Sign-in fails" in line)
        assert "## approved by rehearsal-pm" in line, "the title stays on its own line"


def test_report_never_replaces_the_state_a_device_or_a_file(own: Rehearsed, tmp_path: Path) -> None:
    state = f"sqlite:{own.state}"
    before = digest(own.state)
    onto_state = run("report", "--state", state, "--out", str(own.state))
    assert onto_state.exit_code == 2
    assert f"--out {own.state}: is an input of this command" in onto_state.output
    assert digest(own.state) == before
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode)
    onto_null = run("report", "--state", state, "--out", "/dev/null")
    assert onto_null.exit_code == 2 and "is not a regular file" in onto_null.output
    assert stat.S_ISCHR(os.stat("/dev/null").st_mode), "/dev/null is still the device"
    onto_dir = run("report", "--state", state, "--out", str(tmp_path))
    assert onto_dir.exit_code == 2 and "is a folder" in onto_dir.output
    copy = tmp_path / "copy.db"
    copy.write_bytes(own.state.read_bytes())
    onto_db = run("report", "--state", state, "--out", str(copy), "--force")
    assert onto_db.exit_code == 2 and "is an SQLite database" in onto_db.output
    assert copy.read_bytes() == own.state.read_bytes()
    old = tmp_path / "report.html"
    old.write_text("last week's report", encoding="utf-8")
    kept = run("report", "--state", state, "--out", str(old))
    assert kept.exit_code == 2
    assert kept.output.endswith("exists; pass --force to replace it, or name another file. Nothing was written.\n")
    assert old.read_text(encoding="utf-8") == "last week's report"
    forced = run("report", "--state", state, "--out", str(old), "--force")
    assert forced.exit_code == 0, forced.output
    assert old.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")
    assert stat.S_IMODE(old.stat().st_mode) == 0o600
    assert digest(own.state) == before


def test_plan_and_ci_comment_never_write_over_their_inputs(fleet_csv: Any, tmp_path: Path) -> None:
    inventory = fleet_csv(200, 3)
    policy = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
    local_policy = tmp_path / "policy.yaml"
    local_policy.write_bytes(policy.read_bytes())
    saved = {p: digest(p) for p in (inventory, local_policy)}
    for target in (inventory, local_policy):
        result = run("plan", "--inventory", str(inventory), "--policy", str(local_policy), "--out", str(target),
                     "--force")
        assert result.exit_code == 2 and "is an input of this command" in result.output
    assert {p: digest(p) for p in saved} == saved
    plan = tmp_path / "plan.json"
    first = run("plan", "--inventory", str(inventory), "--policy", str(local_policy), "--out", str(plan))
    assert first.exit_code == 0, first.output
    assert stat.S_IMODE(plan.stat().st_mode) == 0o600
    again = run("plan", "--inventory", str(inventory), "--policy", str(local_policy), "--out", str(plan))
    assert again.exit_code == 2 and "pass --force" in again.output
    comment = run("ci-comment", str(plan), str(plan), "--out", str(plan), "--force")
    assert comment.exit_code == 2 and "is an input of this command" in comment.output
    assert plan.read_text(encoding="utf-8").startswith("{")


def test_demo_refuses_a_folder_that_holds_a_real_rollout(own: Rehearsed, tmp_path: Path) -> None:
    real = tmp_path / ".rollout"
    real.mkdir()
    (real / "state.db").write_bytes(own.state.read_bytes())
    before = digest(real / "state.db")
    result = run("demo", "--dir", str(real))
    assert result.exit_code == 2
    assert "holds files that are not a zt-rollout demo's" in result.output
    assert digest(real / "state.db") == before and not (real / DEMO_MARK).exists()
    fresh = tmp_path / "demo"
    claim_demo_dir(fresh)
    (fresh / "state.db").write_bytes(b"an earlier demo")
    claim_demo_dir(fresh)  # its own folder: accepted
    with pytest.raises(OutputError, match="is not a folder"):
        claim_demo_dir(real / "state.db")


def test_lint_refuses_a_javascript_faq_link(tmp_path: Path) -> None:
    policy = Path(__file__).resolve().parents[1] / "examples" / "policy.yaml"
    data = yaml.safe_load(policy.read_text(encoding="utf-8"))
    for url in ("javascript:alert(document.cookie)", "http://intranet.example.co.jp/faq", "data:text/html,x"):
        data["helpdesk"]["faq_url"] = url
        bad = write_yaml(tmp_path / "policy.yaml", data)
        result = run("lint", "--policy", str(bad))
        assert result.exit_code == 2, url
        assert "helpdesk.faq_url" in result.output and "use an https: or mailto: address" in result.output
    data["helpdesk"]["faq_url"] = "mailto:helpdesk@example.co.jp"
    assert run("lint", "--policy", str(write_yaml(tmp_path / "ok.yaml", data))).exit_code == 0
