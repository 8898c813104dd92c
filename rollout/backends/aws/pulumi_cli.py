"""The one module that runs the Pulumi CLI: ``pulumi stack output --json`` for a site's contract.

Production reads contracts from SSM and never needs Pulumi; this is for a workstation where the
stacks live. Its tests run only when ``pulumi`` is on PATH.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path
from typing import Any

from rollout.core.contract import ContractError


def stack_outputs(stack: str, project: Path) -> dict[str, Any]:
    """The outputs of ``stack`` as JSON (secrets stay masked: the contract has none)."""
    pulumi = shutil.which("pulumi")
    if pulumi is None:
        raise ContractError(f"contract for site {stack!r} (pulumi stack output): the Pulumi CLI is not on PATH; "
                            "use --contracts ssm or a directory of <site>.json files.")
    try:
        done = subprocess.run([pulumi, "stack", "output", "--json", "--stack", stack, "--non-interactive"],
                              cwd=project, capture_output=True, text=True, timeout=120, check=False)
    except subprocess.TimeoutExpired:
        raise ContractError(f"contract for site {stack!r} (pulumi stack output): timed out after 120 s.") from None
    if done.returncode != 0:
        raise ContractError(f"contract for site {stack!r} (pulumi stack output in {project}): "
                            f"{done.stderr.strip() or 'exit code ' + str(done.returncode)}.")
    try:
        data = json.loads(done.stdout)
    except ValueError as err:
        raise ContractError(f"contract for site {stack!r} (pulumi stack output): not JSON: {err}.") from None
    if not isinstance(data, dict):
        raise ContractError(f"contract for site {stack!r} (pulumi stack output): expected a JSON object.")
    return data
