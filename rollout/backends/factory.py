"""Which backend drives a rollout: chosen at ``rollout start`` and recorded with it.

Settings (``StateStore.backend_settings``), one of:

- ``{"backend": "simulator", "scenario": {...}, "world": PATH}``: the rehearsal simulator.
- ``{"backend": "aws", "contracts": {"source": SOURCE, "sites": {site: contract}}, "aws": {...}}``:
  the AWS backend with the contracts resolved at start (``rollout.backends.aws.contracts``) and its call
  settings (``rollout.backends.aws.clients.AwsSettings``). With ``"local_fleet": {...}``, simulated
  devices answer its commands: whoever drives such a rollout (``rollout demo --aws-local``, the
  tests) hands in the emulation's ``wrap``; this module does not know the emulation.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from rollout.backends import Backend
from rollout.backends.simulator import Scenario, Simulator
from rollout.core.contract import ContractError, SiteContract, load_contract
from rollout.core.device import Device
from rollout.errors import InputError, Problem, ProblemsError, SiteContractError
from rollout.store.api import StateStore

# Wraps the AWS backend of a rollout whose settings name a ``local_fleet``: (backend, settings, store, id).
BackendWrap = Callable[[Backend, Mapping[str, Any], StateStore, str], Backend]


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
                 session_factory: Any = None, wrap: BackendWrap | None = None) -> Backend:
    """The backend the rollout was started with (``wrap``: see ``BackendWrap``)."""
    settings = store.backend_settings(rollout_id)
    kind = settings.get("backend")
    if kind == "simulator":
        world = settings.get("world") or default_world
        if world is None:
            raise InputError(f"rollout {rollout_id}: its simulator has no world file recorded; start it again.")
        return Simulator(Path(world), Scenario.model_validate(settings["scenario"]))
    if kind == "aws":
        return _aws(store, rollout_id, settings, session_factory, wrap)
    raise InputError(f"rollout {rollout_id} has no backend this command can drive ({kind or 'none recorded'}); "
                     "start it with --scenario (a rehearsal) or --backend aws --contracts SOURCE.")


def recorded_contracts(settings: Mapping[str, Any]) -> dict[str, SiteContract]:
    try:
        return {site: load_contract(data, site=site, source="the contract recorded at rollout start")
                for site, data in settings["contracts"]["sites"].items()}
    except ContractError as err:
        raise SiteContractError(str(err)) from None


def _aws(store: StateStore, rollout_id: str, settings: Mapping[str, Any], session_factory: Any,
         wrap: BackendWrap | None) -> Backend:
    from rollout.backends.aws.backend import AwsBackend
    from rollout.backends.aws.clients import AwsSettings

    contracts = recorded_contracts(settings)
    aws = AwsBackend(rollout_id, contracts, {w.name: w.index for w in store.waves(rollout_id)},
                     AwsSettings.model_validate(settings.get("aws", {})), session_factory=session_factory)
    if not settings.get("local_fleet"):
        return aws
    if wrap is None:
        aws.close()
        raise InputError(f"rollout {rollout_id} was started against the local AWS emulation, whose simulated "
                         "devices only the demo runs; drive it with `rollout demo --aws-local` instead.")
    return wrap(aws, settings, store, rollout_id)


def world_for(state_location: str, rollout_id: str) -> Path:
    """Where a simulator keeps its fleet: beside a SQLite state file, else under ``.rollout/``.

    The file name never leaves that folder, whatever the rollout's name: a name that is not a plain
    identifier (``../../x``, ``/etc/x``, ``a/b``, ``..``; the policy refuses these, a hand-edited
    plan file might not) is replaced by ``rollout-`` and a digest of it."""
    if state_location.startswith("sqlite:"):
        state = Path(state_location.removeprefix("sqlite:"))
        return state.with_name(state.name + ".world.db")
    folder = Path(".rollout")
    world = folder / f"{_file_stem(rollout_id)}.world.db"
    assert world.parent == folder, world  # _file_stem has no separator: one name, in the folder
    return world


_SAFE_STEM = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,63}")


def _file_stem(name: str) -> str:
    """``name`` if it is a safe one-part file name, else a stable name made from its digest."""
    if _SAFE_STEM.fullmatch(name) and ".." not in name:
        return name
    return "rollout-" + hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:16]
