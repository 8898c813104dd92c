"""``rollout status``: the rollout as data (schema ``zt-rollout/status/v1``) and as a terminal table."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from rollout.core.approvals import missing_roles, valid_approvals
from rollout.core.model import DevicePhase, rollout_phase
from rollout.core.selectors import Selector
from rollout.store.api import StateStore

if TYPE_CHECKING:
    from rich.console import Group

STATUS_SCHEMA = "zt-rollout/status/v1"
PHASE_STYLE = {"passed": "green", "rolled_back": "red", "failed": "red", "rolling_back": "red", "held": "yellow",
               "baking": "cyan", "applying": "cyan"}


def status_json(store: StateStore, rollout_id: str) -> dict[str, Any]:
    status = store.status(rollout_id)
    waves = store.waves(rollout_id)
    approvals = store.approvals(rollout_id)
    counts: dict[int, Counter[str]] = {}
    totals: Counter[str] = Counter()
    for wave, per_phase in store.wave_device_counts(rollout_id).items():  # counted by the store, not loaded
        counts[wave] = Counter({phase.value: n for phase, n in per_phase.items()})
        totals.update(counts[wave])
    last_record: dict[str, dict[str, Any]] = {}
    for record in store.decisions(rollout_id):
        last_record[record["wave"]] = record
    holding = dict(issues_holding(store, rollout_id))
    lease = store.lease_row(rollout_id)
    events, head_hash = store.audit_head(rollout_id)
    return {
        "schema": STATUS_SCHEMA,
        "rollout": rollout_id,
        "phase": rollout_phase(status, waves).value,
        "plan_hash": status.plan_hash,
        "started_by": status.started_by,
        "started_at": status.started_at.isoformat(),
        "separation_of_duties": {"enforced": status.separation_of_duties,
                                 "waived": dict(status.duties_waived) if status.duties_waived else None},
        "paused": {"paused": status.paused, "reason": status.pause_reason},
        "halted": {"halted": status.halted, "reason": status.halt_reason},
        "devices": dict(sorted(totals.items())),
        "waves": [
            {
                "index": w.index, "name": w.name, "canary": w.canary, "phase": w.phase.value, "hash": w.hash,
                "phase_since": w.phase_since.isoformat(),
                "devices": dict(sorted(counts.get(w.index, Counter()).items())),
                "approvals": {
                    "required": list(w.approvals_required),
                    "valid": [{"by": a.by, "role": a.role, "at": a.at.isoformat(), "hash": a.wave_hash}
                              for a in valid_approvals(w, approvals, status)],
                    "missing": list(missing_roles(w, approvals, status)),
                },
                "gate": last_record.get(w.name),
            }
            for w in waves
        ],
        "issues": [
            {"id": i.id, "title": i.title, "selector": i.selector,
             "severity": i.severity.value if i.severity else None, "status": i.status.value,
             "reported_during": i.reported_during, "reported_by": i.reported_by,
             "decided_by": i.decided_by, "auto": i.auto, "holds_devices": holding.get(i.id, 0)}
            for i in store.issues(rollout_id)
        ],
        "lease": None if lease is None else {"holder": lease.holder, "host": lease.host, "pid": lease.pid,
                                             "fence": lease.fence, "lease_id": lease.lease_id},
        "audit": {"events": events, "head_hash": head_hash},
    }


def gate_summary(gate: dict[str, Any]) -> str:
    """'pass: coverage 100% (49/49); kitting 1.00 signin 1.00 ...; held: model=X' for one line of a table."""
    figures = " ".join(f"{s['name']} {s['value']:.2f}" if s["value"] is not None else f"{s['name']} -"
                       for s in gate.get("signals", []))
    text = f"{gate['verdict']}: coverage {gate['coverage']:.0%} ({gate['reported']}/{gate['expected']}); {figures}"
    cohorts = [c["selector"] for c in gate.get("failing_cohorts", [])]
    return text + (f"; cohorts rolled back: {', '.join(cohorts)}" if cohorts else "")


def status_table(data: dict[str, Any]) -> Group:
    from rich import box
    from rich.console import Group, RenderableType
    from rich.table import Table
    from rich.text import Text

    from rollout.templating import terminal_safe

    def txt(value: object, style: str = "") -> Text:  # recorded text, never markup or terminal codes
        return Text(terminal_safe(value, one_line=True), style=style)

    head = txt(f"Rollout {data['rollout']}: {data['phase'].upper()}", "bold")
    parts: list[RenderableType] = [head]
    if data["halted"]["halted"]:
        parts.append(txt(f"halted: {data['halted']['reason']}", "red"))
    if data["paused"]["paused"]:
        parts.append(txt(f"paused: {data['paused']['reason']}", "yellow"))
    waived = data["separation_of_duties"]["waived"]
    if waived:
        parts.append(txt(f"separation of duties WAIVED by {waived['by']} ({waived['role']}, {waived['at'][:10]}): "
                         f"{waived['reason']}; {data['started_by']} may approve waves", "red"))
    table = Table(box=box.SIMPLE_HEAVY)
    for column in ("wave", "phase", "devices", "approvals", "gate"):
        table.add_column(column)
    for w in data["waves"]:
        devices = ", ".join(f"{k} {v:,}" for k, v in w["devices"].items())
        approvals = ", ".join(f"{a['by']} ({a['role']})" for a in w["approvals"]["valid"])
        if w["approvals"]["missing"]:
            approvals += ("; " if approvals else "") + "missing: " + ", ".join(w["approvals"]["missing"])
        gate = gate_summary(w["gate"]["gate"]) if w["gate"] else ""
        table.add_row(txt(w["name"]), txt(w["phase"], PHASE_STYLE.get(w["phase"], "")), txt(devices), txt(approvals),
                      txt(gate))
    parts.append(table)
    for issue in data["issues"]:
        parts.append(txt(f"#{issue['id']} [{issue['severity'] or 'UNTRIAGED'} / {issue['status']}] {issue['title']} "
                          f"({issue['selector']}; holds {issue['holds_devices']:,} devices)"))
    if data["lease"]:
        lease = data["lease"]
        parts.append(txt(f"driven by {lease['holder']} on {lease['host']} (pid {lease['pid']}, fence {lease['fence']})"))
    return Group(*parts)


def issues_holding(store: StateStore, rollout_id: str) -> Sequence[tuple[int, int]]:
    """(issue id, devices it holds) for every open blocker."""
    blockers = [i for i in store.issues(rollout_id) if i.holds_devices]
    if not blockers:
        return []
    parked = store.device_ids_in(rollout_id, (DevicePhase.HELD, DevicePhase.REVERTED))
    inventory = store.inventory(rollout_id, parked)
    out = []
    for issue in blockers:
        matches = Selector.parse(issue.selector).predicate()
        out.append((issue.id, sum(1 for d in parked if matches(inventory[d]))))
    return out
