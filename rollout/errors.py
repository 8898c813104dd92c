"""The errors zt-rollout raises, in one tree.

    RolloutError                  base of everything the project raises on purpose
    +-- InputError                the user's input is wrong; exit code 2
    |   +-- InventoryError        inventory file: encoding, columns, values (lists every problem)
    |   +-- PolicyError           rollout policy file (lists every problem with its key path)
    |   +-- ScenarioError         rehearsal scenario file (lists every problem with its key path)
    |   +-- PlanFileError         a plan JSON file that cannot be read
    |   +-- InfeasiblePlanError   the policy's constraints cannot all be met by this fleet
    |   +-- StateFileError        the --state SQLite file is missing, read-only, not SQLite, damaged or on a full disk
    |   +-- OutputError           an --out over the state, an input, a device, or a file without --force
    |   +-- SiteContractError     a site's contract (SSM parameter, stack output, file) is missing or incomplete
    |       +-- ContractError     the same, raised while reading one (also a ValueError, for pydantic validators)
    +-- NotFoundError             a device, wave or rollout named on the command line does not exist; exit 1
    +-- AwaitingHumanError        the rollout cannot go on without a person (approval, triage); exit 3
    +-- AwsError                  AWS refused or failed a call (converted in one place: rollout.backends.aws.calls); exit 1
    |   +-- PermissionDeniedError AccessDenied: names the IAM action and the role to grant it to
    |   +-- AwsUnavailableError   throttling or outages outlasted every retry and the backoff deadline
    +-- StateStoreError           the state store failed a read or a write (DynamoDB); nothing half-written; exit 1
    +-- ConflictError, StaleWriterError (rollout.store.api) a write lost a race or its lease; exit 1

Only the CLI turns these into exit codes (see ``rollout.cli.main``); library code raises them and
never calls ``sys.exit``. Every message ends with what to do next.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

EXIT_FAILURE = 1
EXIT_INPUT = 2
EXIT_AWAITING = 3


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with an input, located as precisely as the input allows.

    ``where`` is ``file:line`` for row-oriented files and ``file`` or ``file:key.path`` otherwise;
    ``field`` names the column or key; ``message`` says what is wrong.
    """

    where: str
    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.where}: {self.field}: {self.message}" if self.field else f"{self.where}: {self.message}"


class RolloutError(Exception):
    """Base of every error zt-rollout raises on purpose."""

    exit_code = EXIT_FAILURE


class InputError(RolloutError):
    """The user's input (a file or an option) is wrong; nothing was written."""

    exit_code = EXIT_INPUT


class ProblemsError(InputError):
    """An input error that carries every problem found, not just the first."""

    what = "input"
    hint = "Fix the lines above and run the command again; nothing was written."

    def __init__(self, problems: Sequence[Problem], *, source: str = "") -> None:
        self.problems = tuple(problems)
        self.source = source
        head = f"{len(self.problems)} problem{'s' if len(self.problems) != 1 else ''} in {self.what}"
        if source:
            head += f" {source}"
        lines = [head + ":"] + [f"  {p}" for p in self.problems] + [self.hint]
        super().__init__("\n".join(lines))


class InventoryError(ProblemsError):
    what = "inventory"


class PolicyError(ProblemsError):
    what = "policy"


class ScenarioError(ProblemsError):
    what = "scenario"


class PlanFileError(InputError):
    """A plan JSON file is missing, unreadable or not a zt-rollout plan."""


class OutputError(InputError):
    """An output path must not be written (the state, an input, a device, a folder, an existing file
    without ``--force``); nothing was written."""


class InfeasiblePlanError(ProblemsError):
    what = "plan: the policy's constraints cannot all be met"
    hint = "Relax the named constraint by at least the amount shown, or add waves; no plan was written."


class NotFoundError(RolloutError):
    """A name given on the command line does not exist."""


class AwaitingHumanError(RolloutError):
    """Nothing more can happen until a person acts: a wave waits for approval or triage."""

    exit_code = EXIT_AWAITING


class StateFileError(InputError):
    """The SQLite state file named by ``--state`` cannot be used: missing, read-only, not SQLite, damaged,
    or its disk is full; the message says which and what to do. Nothing was half-written."""


class SiteContractError(InputError):
    """A site's contract cannot be read or lacks a key; the message names the site and the key."""


class ContractError(SiteContractError, ValueError):
    """A site contract is missing, unreadable or lacks a key; the message names the site and the key.

    Raised by ``rollout.core.contract`` (which ``stacks/`` shares); a ValueError too, so that a
    pydantic validator may raise it."""


class AwsError(RolloutError):
    """AWS answered a call with an error the orchestrator does not handle itself."""

    def __init__(self, message: str, *, code: str = "", action: str = "") -> None:
        super().__init__(message)
        self.code, self.action = code, action


class PermissionDeniedError(AwsError):
    """AWS denied an action: grant it to the orchestrator's role (see stacks/README.md)."""


class AwsUnavailableError(AwsError):
    """Throttling or service errors lasted past the retry deadline; nothing was lost, run again later."""


class StateStoreError(RolloutError):
    """The state store could not read or write; a write that failed left nothing half-done."""
