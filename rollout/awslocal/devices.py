"""Simulated devices for the local AWS emulation: they answer the SSM commands the orchestrator sends.

moto records a SendCommand but runs nothing, so ``LocalFleet.play(now)`` does what each managed
node's agent and the document's last step would: for every kitting or rollback command it has not
seen, each node of its ``deviceMap`` runs it (outcome drawn from the rehearsal scenario, the same
faults and delays as the simulator) and later writes its check-in item to the site's check-in
table, exactly the item ``writeCheckIn`` writes. Time is the rollout's clock (simulated in the
demo): a check-in is written once ``now`` passes its time. What was seen and written is kept in a
small SQLite file, so a driver killed and started again does not run a command twice.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import boto3

from rollout.backends.factory import recorded_contracts
from rollout.backends.simulator import FaultOdds, Scenario, uniform
from rollout.core.contract import SiteContract
from rollout.core.decision import Signals
from rollout.core.device import Device
from rollout.core.model import StepResult
from rollout.files import create_private
from rollout.store.api import StateStore

FAILED_CHECK = {"kitting": "edr_agent_running", "ztna": "ztna_agent_running", "signin": "signin_portal_reachable",
                "app": "private_apps_reachable", "migrate": "aws_cli_present"}
SCHEMA = """
CREATE TABLE IF NOT EXISTS seen (command_id TEXT NOT NULL, node TEXT NOT NULL, device_id TEXT NOT NULL,
                                 site TEXT NOT NULL, due_at TEXT, item TEXT, written INTEGER NOT NULL DEFAULT 0,
                                 PRIMARY KEY (command_id, node))
"""


class LocalFleet:
    def __init__(self, world: Path, scenario: Scenario, contracts: Mapping[str, SiteContract],
                 inventory: Mapping[str, Device], wave_names: Mapping[int, str]) -> None:
        self.scenario, self.contracts, self.inventory, self.wave_names = scenario, contracts, inventory, wave_names
        self.odds = FaultOdds(scenario)
        create_private(world)
        self.db = sqlite3.connect(world, isolation_level=None, timeout=60)
        self.db.execute("PRAGMA journal_mode=WAL")
        self.db.executescript(SCHEMA)
        session = boto3.session.Session()
        self._ssm = {c.region: session.client("ssm", region_name=c.region) for c in contracts.values()}
        self._ddb = {c.region: session.client("dynamodb", region_name=c.region) for c in contracts.values()}

    def close(self) -> None:
        self.db.close()

    def play(self, now: dt.datetime) -> None:
        """Run every command not seen yet (at ``now``), then write the check-ins that are due."""
        documents = {c.kitting_document_name: ("kitting", c) for c in self.contracts.values()}
        documents.update({c.rollback_document_name: ("rollback", c) for c in self.contracts.values()})
        for region, ssm in self._ssm.items():
            for command in self._commands(ssm):
                kind, contract = documents.get(command.get("DocumentName", ""), ("", None))
                if contract is not None and contract.region == region:
                    self._run(command, kind, contract, now)
        self._write_due(now)

    @staticmethod
    def _commands(ssm: Any) -> list[dict[str, Any]]:
        out: list[dict[str, Any]] = []
        args: dict[str, Any] = {}
        while True:
            page = ssm.list_commands(**args)
            out += page.get("Commands", [])
            if not page.get("NextToken"):
                return out
            args["NextToken"] = page["NextToken"]

    def _run(self, command: dict[str, Any], kind: str, contract: SiteContract, now: dt.datetime) -> None:
        params = command.get("Parameters", {})
        rollout_wave = params["rolloutWave"][0]
        pairs = [p.split("=", 1) for p in params["deviceMap"][0].split(",")]
        for node, device_id in pairs:
            if self.db.execute("SELECT 1 FROM seen WHERE command_id=? AND node=?", (command["CommandId"], node)
                               ).fetchone():
                continue
            runs = self.db.execute("SELECT COUNT(*) FROM seen WHERE device_id=?", (device_id,)).fetchone()[0]
            item, due = self._outcome(kind, contract, rollout_wave, device_id, f"{kind}-{runs}", now)
            self.db.execute("INSERT INTO seen VALUES (?,?,?,?,?,?,0)",
                            (command["CommandId"], node, device_id, contract.site, due and due.isoformat(),
                             item and json.dumps(item)))

    def _outcome(self, kind: str, contract: SiteContract, rollout_wave: str, device_id: str, run: str,
                 now: dt.datetime) -> tuple[dict[str, Any] | None, dt.datetime | None]:
        """The check-in this node will write, and when (None: it stays offline). Drawn from the
        scenario's seed, the device, the wave and how many commands the device ran before."""
        device = self.inventory[device_id]
        wave = self.wave_names.get(int(rollout_wave.rsplit("#", 1)[1]), "")
        scenario, key = self.scenario, (self.scenario.seed, device_id, rollout_wave, run)
        if uniform(*key, "offline") < scenario.offline:
            return None, None
        delay = scenario.checkin_delay
        due = now + dt.timedelta(seconds=delay.min + uniform(*key, "delay") * (delay.max - delay.min))
        failed = []
        if kind == "kitting":
            failed = sorted(FAILED_CHECK[check] for check in FAILED_CHECK
                            if uniform(*key, check) < self.odds.failure_probability(device, wave, check))
        stamp = due.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        item = {"rollout_wave": {"S": rollout_wave}, "device_id": {"S": device_id}, "site": {"S": contract.site},
                "action": {"S": kind}, "status": {"S": "failed" if failed else "succeeded"},
                "failed_checks": {"S": ",".join(failed)}, "checked_in_at": {"S": stamp},
                "expires_at": {"N": str(int(due.timestamp()) + 90 * 86400)}}
        return item, due

    def _write_due(self, now: dt.datetime) -> None:
        rows = self.db.execute("SELECT command_id, node, site, item FROM seen WHERE written=0 AND due_at IS NOT NULL "
                               "AND due_at <= ? ORDER BY due_at", (now.isoformat(),)).fetchall()
        by_site: dict[str, list[tuple[str, str, str]]] = {}
        for command_id, node, site, item in rows:
            by_site.setdefault(site, []).append((command_id, node, item))
        for site, due in by_site.items():
            contract = self.contracts[site]
            for start in range(0, len(due), 25):  # BatchWriteItem takes 25
                chunk = due[start:start + 25]
                requests: list[Any] = [{"PutRequest": {"Item": json.loads(item)}} for _, _, item in chunk]
                while requests:
                    answer = self._ddb[contract.region].batch_write_item(
                        RequestItems={contract.checkin_table_name: requests})
                    requests = answer.get("UnprocessedItems", {}).get(contract.checkin_table_name, [])
                self.db.executemany("UPDATE seen SET written=1 WHERE command_id=? AND node=?",
                                    [(command_id, node) for command_id, node, _ in chunk])

    def commands_run(self) -> int:
        return int(self.db.execute("SELECT COUNT(*) FROM seen").fetchone()[0])


class LocalFleetBackend:
    """The AWS backend, with the local fleet answering its commands (``rollout demo --aws-local``)."""

    def __init__(self, aws: Any, fleet: LocalFleet) -> None:
        self.aws, self.fleet = aws, fleet

    def migrate(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
                now: dt.datetime, **options: Any) -> list[StepResult]:
        results: list[StepResult] = self.aws.migrate(op_id, wave, devices, steps_done, now, **options)
        self.fleet.play(now)
        return results

    def revert(self, op_id: str, wave: str, devices: Sequence[Device], steps_done: Mapping[str, int],
               now: dt.datetime, **options: Any) -> list[StepResult]:
        results: list[StepResult] = self.aws.revert(op_id, wave, devices, steps_done, now, **options)
        self.fleet.play(now)
        return results

    def read_signals(self, rollout_id: str, wave: str, devices: Sequence[Device], now: dt.datetime, *,
                     refs: Mapping[str, str] | None = None) -> Signals:
        self.fleet.play(now)
        signals: Signals = self.aws.read_signals(rollout_id, wave, devices, now, refs=refs)
        return signals

    def close(self) -> None:
        self.aws.close()
        self.fleet.close()

    @property
    def call_stats(self) -> Any:
        return self.aws.call_stats


def local_fleet(aws: Any, settings: Mapping[str, Any], store: StateStore, rollout_id: str) -> LocalFleetBackend:
    """The AWS backend of a rollout started with ``local_fleet`` settings, with the local fleet answering
    its commands: the ``wrap`` that the demo and the tests hand to ``rollout.backends.factory.open_backend``."""
    local = settings["local_fleet"]
    fleet = LocalFleet(Path(local["world"]), Scenario.model_validate(local["scenario"]), recorded_contracts(settings),
                       store.inventory(rollout_id), {w.index: w.name for w in store.waves(rollout_id)})
    return LocalFleetBackend(aws, fleet)
