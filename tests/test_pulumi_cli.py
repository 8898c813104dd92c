"""`--contracts pulumi`: the one place the Pulumi CLI is run. The real run needs `pulumi` on PATH."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from rollout.backends.aws.contracts import resolve_contracts
from rollout.backends.aws.pulumi_cli import stack_outputs
from rollout.core.contract import ContractError
from rollout.errors import SiteContractError
from rollout.plan import api

TOKYO = json.loads((api.examples_dir() / "contracts" / "tokyo.json").read_text(encoding="utf-8"))


def test_without_the_cli_the_message_says_what_to_use_instead(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setattr(shutil, "which", lambda name: None)
    with pytest.raises(ContractError, match="the Pulumi CLI is not on PATH; use --contracts ssm"):
        stack_outputs("tokyo", tmp_path)
    with pytest.raises(SiteContractError, match="contract for site 'tokyo' \\(pulumi stack output\\)"):
        resolve_contracts(f"pulumi:{tmp_path}", ["tokyo"])


@pytest.mark.skipif(shutil.which("pulumi") is None, reason="the Pulumi CLI is not installed on this machine")
def test_stack_outputs_of_a_real_stack_are_a_contract(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    outputs = "\n".join(f"  {k}: {json.dumps(v)}" for k, v in TOKYO.items())
    (tmp_path / "Pulumi.yaml").write_text(f"name: contract-check\nruntime: yaml\noutputs:\n{outputs}\n")
    env = {**os.environ, "PULUMI_BACKEND_URL": f"file://{tmp_path}", "PULUMI_CONFIG_PASSPHRASE": "local-only",
           "PULUMI_SKIP_UPDATE_CHECK": "1"}
    for args in (["stack", "init", "tokyo"], ["up", "--yes", "--skip-preview", "--stack", "tokyo"]):
        subprocess.run(["pulumi", *args, "--non-interactive"], cwd=tmp_path, env=env, check=True, capture_output=True)
    for name in ("PULUMI_BACKEND_URL", "PULUMI_CONFIG_PASSPHRASE"):
        monkeypatch.setenv(name, env[name])
    contracts = resolve_contracts(f"pulumi:{tmp_path}", ["tokyo"])
    assert contracts["tokyo"].checkin_table_name == TOKYO["checkin_table_name"]
