"""How the SSM Agent runs a schemaVersion 2.2 Command document, ported from its source (aws/amazon-ssm-agent),
so the tests judge our documents by the agent's rules instead of ours. Where each rule comes from:

- ``agent/framework/docparser/docparser.go``, ``parsePluginStateForV20Schema``: of each step in
  ``mainSteps`` the agent keeps ``action``, ``name``, ``inputs`` (handed to the plugin as its
  ``Properties``), ``settings`` and ``precondition``. ``contracts.InstancePluginConfig``
  (``agent/contracts/model.go``) also declares ``onFailure``, ``maxAttempts`` and ``timeoutSeconds``
  at step level, but nothing reads them there: a step-level ``onFailure`` is silently ignored.
- ``agent/framework/runpluginutil/runpluginutil.go``, ``getStringPropByName``: a modifier is read from
  the step's ``Properties`` (its ``inputs``) and counts only as a string or a boolean.
- the same file, ``getShouldPluginSkipBasedOnControlFlow``: a step is skipped when any earlier step
  exited with code 168 or 169, ended ``Failed`` with ``onFailure: exit``, or ended ``Success`` with
  ``onSuccess: exit``; except the last step when it has ``finallyStep: true`` (on any other step
  ``finallyStep`` is ignored). The modifier names and values are ``contracts.OnFailureModifier``,
  ``OnSuccessModifier``, ``FinallyStepModifier``, ``ModifierValueExit``, ``ModifierValueTrue``,
  ``ExitWithSuccess = 168`` and ``ExitWithFailure = 169`` in ``agent/contracts/model.go``.
- ``agent/plugins/pluginutil/pluginutil_windows.go``, ``GetStatus``: a script stopped at its
  ``timeoutSeconds`` ends ``TimedOut``, not ``Failed``, so ``onFailure: exit`` does not stop the
  document after a timeout.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Literal

#: Step keys ``parsePluginStateForV20Schema`` reads; anything else at step level is ignored by the agent.
STEP_KEYS = frozenset({"action", "name", "inputs", "settings", "precondition"})
#: Control-flow modifiers, read from ``inputs`` only.
MODIFIERS = ("onFailure", "onSuccess", "finallyStep")
EXIT_WITH_SUCCESS, EXIT_WITH_FAILURE = 168, 169

Outcome = Literal["Success", "Failed", "TimedOut"]


def string_prop(inputs: Any, name: str) -> str:
    """``getStringPropByName``: the modifier as a string; booleans as ``true``/``false``; else ``""``."""
    if not isinstance(inputs, Mapping) or name not in inputs:
        return ""
    value = inputs[name]
    if isinstance(value, bool):
        return "true" if value else "false"
    return value if isinstance(value, str) else ""


def is_skipped(steps: Sequence[Mapping[str, Any]], index: int, results: Mapping[int, tuple[str, int]]) -> bool:
    """``getShouldPluginSkipBasedOnControlFlow`` for step ``index`` given the earlier steps' (status, code)."""
    if string_prop(steps[index].get("inputs"), "finallyStep") == "true" and index == len(steps) - 1:
        return False
    for earlier in range(index):
        status, code = results[earlier]
        inputs = steps[earlier].get("inputs")
        if code in (EXIT_WITH_SUCCESS, EXIT_WITH_FAILURE):
            return True
        if status == "Failed" and string_prop(inputs, "onFailure") == "exit":
            return True
        if status == "Success" and string_prop(inputs, "onSuccess") == "exit":
            return True
    return False


def run_steps(steps: Sequence[Mapping[str, Any]], outcomes: Mapping[int, Outcome]) -> list[int]:
    """The indexes of the steps the agent runs, when step ``i`` ends ``outcomes.get(i, "Success")``.

    A skipped step ends ``Skipped`` with code 0; a failed script exits 1; a timed-out one is stopped.
    The node is assumed to satisfy every precondition (the tests check that each step's precondition
    is the Windows platform the simulation stands for).
    """
    results: dict[int, tuple[str, int]] = {}
    ran: list[int] = []
    for index in range(len(steps)):
        if is_skipped(steps, index, results):
            results[index] = ("Skipped", 0)
            continue
        ran.append(index)
        outcome = outcomes.get(index, "Success")
        results[index] = (outcome, {"Success": 0, "Failed": 1, "TimedOut": -1}[outcome])
    return ran
