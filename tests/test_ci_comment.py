"""PR previews: the `rollout ci-comment` markdown against the diff it summarises, and the GitHub
workflow that posts it (checked with actionlint, and for what it must contain)."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from rollout.cli.main import cli
from rollout.files import write_json_atomic
from rollout.plan.diff import diff_plans
from rollout.plan.planfile import load_plan_file, plan_to_json
from rollout.reports.ci_comment import MARKER, ci_comment_markdown, resized
from tests.conftest import example_policy_data, make_plan

ROOT = Path(__file__).resolve().parent.parent
WORKFLOW = ROOT / ".github" / "workflows" / "preview.yml"


@pytest.fixture(scope="module")
def plans(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The example policy's plan of 400 devices, and the same with wave-2 at 12 % instead of 10 %."""
    folder = tmp_path_factory.mktemp("plans")
    waves = example_policy_data()["waves"]
    bigger = [dict(w, size="12%") if w["name"] == "wave-2" else w for w in waves]
    old, new = folder / "old.json", folder / "new.json"
    write_json_atomic(old, plan_to_json(make_plan(n=400)))
    write_json_atomic(new, plan_to_json(make_plan(n=400, waves=bigger)))
    return old, new


def test_comment_summarises_the_diff(plans: tuple[Path, Path]) -> None:
    d = diff_plans(load_plan_file(plans[0]), load_plan_file(plans[1]))
    assert d.moved and d.voided and any(w.old_size != w.new_size for w in d.waves)
    text = ci_comment_markdown(d)
    lines = text.splitlines()
    assert lines[0] == MARKER and lines[1] == "## Rollout plan preview"
    assert f"| Devices moved to another wave | **{len(d.moved):,}** |" in text
    assert f"| Waves resized | {'; '.join(resized(d))} |" in text
    wave2 = next(w for w in d.waves if w.name == "wave-2")
    assert f"wave-2 {wave2.old_size:,} → {wave2.new_size:,} (+{wave2.new_size - wave2.old_size:,})" in text
    assert f"| Approvals this change voids | **{'**, **'.join(d.voided)}**: each must be approved again" in text
    covered = f"{d.old_coverage[0]}/{d.old_coverage[1]} → {d.new_coverage[0]}/{d.new_coverage[1]} cohorts"
    assert f"| Canary coverage | {covered}" in text
    assert "<details><summary>Full plan diff</summary>" in text and "### Rollout plan diff" in text
    for device, old, new in d.moved[:200]:
        assert f"| {device} | {old} | {new} |" in text


def test_identical_plans_say_so(plans: tuple[Path, Path]) -> None:
    same = load_plan_file(plans[0])
    text = ci_comment_markdown(diff_plans(same, same))
    assert text == (f"{MARKER}\n## Rollout plan preview\n\nThis change leaves the rollout plan as it is (plan hash "
                    f"`{same.plan_hash[:12]}`): no device moves, no approval is voided.\n")


def test_cli_ci_comment(plans: tuple[Path, Path], tmp_path: Path) -> None:
    runner = CliRunner()
    d = diff_plans(load_plan_file(plans[0]), load_plan_file(plans[1]))
    printed = runner.invoke(cli, ["ci-comment", str(plans[0]), str(plans[1])])
    assert printed.exit_code == 0 and printed.output == ci_comment_markdown(d)
    out = tmp_path / "comment.md"
    written = runner.invoke(cli, ["ci-comment", str(plans[0]), str(plans[1]), "--out", str(out)])
    assert written.exit_code == 0
    assert written.output == f"Wrote {out} (plan-diff comment, {len(out.read_bytes()):,} bytes, readable by you only).\n"
    assert out.read_text(encoding="utf-8") == ci_comment_markdown(d)
    missing = runner.invoke(cli, ["ci-comment", str(tmp_path / "nope.json"), str(plans[1])])
    assert missing.exit_code == 2
    assert missing.output == (f"error: {tmp_path / 'nope.json'}: cannot read: No such file or directory. "
                              "Write a plan with `rollout plan --out`.\n")


def actionlint() -> str:
    found = shutil.which("actionlint") or shutil.which("actionlint", path=str(Path(sys.executable).parent))
    if not found:
        pytest.fail("actionlint is missing: `make install-dev` installs it (pyproject's dev extra)")
    return found


def lint(path: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([actionlint(), "-no-color", str(path)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, check=False)


def test_workflow_passes_actionlint() -> None:
    result = lint(WORKFLOW.relative_to(ROOT), ROOT)
    assert result.returncode == 0, result.stdout + result.stderr


def test_actionlint_catches_a_broken_workflow(tmp_path: Path) -> None:
    broken = tmp_path / ".github" / "workflows" / "preview.yml"
    broken.parent.mkdir(parents=True)
    broken.write_text(WORKFLOW.read_text(encoding="utf-8").replace("comment-on-pr: true", "comment-on-prr: true"),
                      encoding="utf-8")
    result = lint(broken.relative_to(tmp_path), tmp_path)
    assert result.returncode != 0 and 'input "comment-on-prr" is not defined' in result.stdout


def steps(job: dict[str, Any]) -> list[dict[str, Any]]:
    return list(job["steps"])


def test_workflow_previews_every_stack_and_keeps_one_sticky_comment() -> None:
    flow = yaml.safe_load(WORKFLOW.read_text(encoding="utf-8"))
    assert "pull_request" in flow[True]  # YAML 1.1 reads the key `on` as True
    jobs = flow["jobs"]
    assert any(s.get("run") == "make test" for s in steps(jobs["test"]))
    preview = jobs["pulumi-preview"]
    stacks = sorted(p.name.split(".")[1] for p in (ROOT / "stacks").glob("Pulumi.*.yaml"))
    assert sorted(preview["strategy"]["matrix"]["stack"]) == stacks
    pulumi = next(s for s in steps(preview) if s.get("uses", "").startswith("pulumi/actions@"))
    assert pulumi["with"]["command"] == "preview" and pulumi["with"]["comment-on-pr"] is True
    assert pulumi["with"]["stack-name"] == "${{ matrix.stack }}" and pulumi["with"]["policyPacks"] == "policy"
    diff = steps(jobs["plan-diff"])
    assert any("rollout ci-comment" in s.get("run", "") for s in diff)
    refs = [s["with"].get("ref") for s in diff if s.get("uses", "").startswith("actions/checkout@")]
    assert "${{ github.event.pull_request.base.sha }}" in refs
    script = next(s for s in diff if s.get("uses", "").startswith("actions/github-script@"))["with"]["script"]
    assert f"const marker = '{MARKER}';" in script
    assert "updateComment" in script and "createComment" in script
