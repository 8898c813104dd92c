"""Which backend drives a rollout: chosen at ``rollout start`` and recorded with it.

Settings (``StateStore.backend_settings``), one of:

- ``{"backend": "simulator", "scenario": {...}, "world": PATH}``: the rehearsal simulator.
- ``{"backend": "aws", "contracts": {"source": SOURCE, "sites": {site: contract}}, "aws": {...}}``:
  the AWS backend with the contracts resolved at start (``rollout.backends.aws.contracts``) and its call
  settings (``rollout.backends.aws.clients.AwsSettings``); with ``"local_fleet": {"scenario", "world"}`` the
  simulated devices of the local AWS emulation answer its commands (``rollout demo --aws-local``).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from rollout.backends import Backend
from rollout.backends.simulator import Scenario, Simulator
from rollout.core.contract import ContractError, SiteContract, load_contract
from rollout.errors import InputError, Problem, ProblemsError, SiteContractError
from rollout.plan.inventory import Device
from rollout.store.api import StateStore


def simulator_settings(scenario: Scenario, world: Path) -> dict[str, Any]:
    return {"backend": "simulator", "scenario": scenario.model_dump(mode="json"), "world": str(world)}


class BackendSetupError(ProblemsError):
    what = "the rollout's AWS setup"
    hint = "Fix the inventory or the contracts and start again; nothing was recorded."


def aws_settings(source: str, devices: Mapping[str, Device], aws: Mapping[str, Any], *, inventory_name: str,
                 contracts: Mapping[str, SiteContract] | None = None) -> dict[str, Any]:
    """The AWS backend's settings for a rollout of ``devices``: every site needs a contract, every
    device a managed node; every problem is reported together (``inventory.csv: D1: instance_id: ...``)."""
    from rollout.backends.aws.clients import AwsSettings
    from rollout.backends.aws.contracts import resolve_contracts

    settings = AwsSettings.model_validate(dict(aws))
    resolved = dict(contracts) if contracts is not None else resolve_contracts(source, {d.site for d in devices.values()})
    problems = [Problem(f"{inventory_name}: {d.device_id}", "instance_id",
                        "missing: the device's Systems Manager managed node (mi-... or i-...) is needed to kit it")
                for d in sorted(devices.values(), key=lambda d: d.device_id) if not dict(d.attributes).get("instance_id")]
    if problems:
        raise BackendSetupError(problems[:50] + ([Problem(inventory_name, "instance_id", f"... and {len(problems) - 50} "
                                                          "more devices")] if len(problems) > 50 else []))
    return {"backend": "aws", "contracts": {"source": source,
                                            "sites": {s: c.model_dump(mode="json") for s, c in sorted(resolved.items())}},
            "aws": settings.model_dump(mode="json")}


def open_backend(store: StateStore, rollout_id: str, *, default_world: Path | None = None,
                 session_factory: Any = None) -> Backend:
    """The backend the rollout was started with."""
    settings = store.backend_settings(rollout_id)
    kind = settings.get("backend")
    if kind == "simulator":
        world = settings.get("world") or default_world
        if world is None:
            raise InputError(f"rollout {rollout_id}: its simulator has no world file recorded; start it again.")
        return Simulator(Path(world), Scenario.model_validate(settings["scenario"]))
    if kind == "aws":
        return _aws(store, rollout_id, settings, session_factory)
    raise InputError(f"rollout {rollout_id} has no backend this command can drive ({kind or 'none recorded'}); "
                     "start it with --scenario (a rehearsal) or --backend aws --contracts SOURCE.")


def recorded_contracts(settings: Mapping[str, Any]) -> dict[str, SiteContract]:
    try:
        return {site: load_contract(data, site=site, source="the contract recorded at rollout start")
                for site, data in settings["contracts"]["sites"].items()}
    except ContractError as err:
        raise SiteContractError(str(err)) from None


def _aws(store: StateStore, rollout_id: str, settings: Mapping[str, Any], session_factory: Any) -> Backend:
    from rollout.backends.aws.backend import AwsBackend
    from rollout.backends.aws.clients import AwsSettings

    contracts = recorded_contracts(settings)
    waves = store.waves(rollout_id)
    aws = AwsBackend(rollout_id, contracts, {w.name: w.index for w in waves},
                     AwsSettings.model_validate(settings.get("aws", {})), session_factory=session_factory)
    local = settings.get("local_fleet")
    if not local:
        return aws
    from rollout.awslocal.devices import LocalFleet, LocalFleetBackend

    fleet = LocalFleet(Path(local["world"]), Scenario.model_validate(local["scenario"]), contracts,
                       store.inventory(rollout_id), {w.index: w.name for w in waves})
    return LocalFleetBackend(aws, fleet)


def world_for(state_location: str, rollout_id: str) -> Path:
    """Where a simulator keeps its fleet: beside a SQLite state file, else under ``.rollout/``."""
    if state_location.startswith("sqlite:"):
        state = Path(state_location.removeprefix("sqlite:"))
        return state.with_name(state.name + ".world.db")
    return Path(".rollout") / f"{rollout_id}.world.db"



