"""``rollout report``: the rollout as one self-contained HTML page (or markdown) for people who do
not run the CLI: PMs, approvers, management.

Three steps, the middle one pure:

1. ``read_report_input(store, rollout_id)`` reads the status document (``status_json``), the
   plan, the device rows, the inventory and the audit log through the store's read methods only,
   so it works with every state store.
2. ``report_view(inp, lang)`` turns that into a ``ReportView``: the traffic light and its reasons
   (``rollout.reports.light``), per-wave states and gates, approvals, open issues, the two charts
   (``rollout.reports.charts``) and the per-site and per-cohort breakdowns, with labels in ``lang``.
3. ``render_report(view, fmt)`` renders ``templates/reports/status.html.j2`` (autoescaped; inline CSS
   and SVG, no script, no external reference: the file can be mailed or archived) or
   ``status.md.j2`` for chat and e-mail (the light and its reasons, device totals, the waves, the
   open issues and the per-site table; no charts).

Breakdowns group device phases: verified; in progress (migrating, migrated, deferred); waiting
(pending); held; rolled back (failed, reverting, reverted); excluded. Cohort tables list the values
of ``COHORT_KEYS`` with the most devices held or rolled back first, then the largest, at most
``COHORT_ROWS`` each.
"""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from markupsafe import Markup

from rollout.core.device import Device
from rollout.core.model import DevicePhase, DeviceState
from rollout.core.signals import RATE_SIGNALS, TICKETS
from rollout.core.timeline import Timeline, migration_timeline
from rollout.errors import InputError
from rollout.reports.charts import SignalBar, signals_svg, timeline_svg
from rollout.reports.light import Light, assess_light
from rollout.reports.status import status_json
from rollout.reports.text import FORMATS, labels
from rollout.store.api import StateStore
from rollout.templating import render, render_html

COHORT_KEYS = ("model", "os_version", "department")
COHORT_ROWS = 15
GROUPS: Mapping[str, tuple[str, ...]] = {
    "verified": ("verified",), "in_progress": ("migrating", "migrated", "deferred"), "waiting": ("pending",),
    "held": ("held",), "rolled_back": ("failed", "reverting", "reverted"), "excluded": ("excluded",),
}
GROUP_OF = {phase: group for group, phases in GROUPS.items() for phase in phases}
LIGHT_MARK = {Light.RED: "🔴", Light.YELLOW: "🟡", Light.GREEN: "🟢"}


@dataclass(frozen=True, slots=True)
class ReportInput:
    status: Mapping[str, Any]  # zt-rollout/status/v1
    plan: Mapping[str, Any]  # zt-rollout/plan/v1
    devices: Mapping[str, DeviceState]
    inventory: Mapping[str, Device]
    timeline: Timeline


def read_report_input(store: StateStore, rollout_id: str) -> ReportInput:
    """Everything the report shows, read through the store's public read methods."""
    return ReportInput(status_json(store, rollout_id), store.plan_json(rollout_id), store.devices(rollout_id),
                       store.inventory(rollout_id), migration_timeline(store.events(rollout_id)))


@dataclass(frozen=True, slots=True)
class Count:
    key: str
    label: str
    n: int


@dataclass(frozen=True, slots=True)
class SignalRow:
    name: str
    label: str
    value: str
    pass_rule: str
    rollback_rule: str
    measured: int
    verdict: str
    verdict_label: str


@dataclass(frozen=True, slots=True)
class GateRow:
    verdict: str
    verdict_label: str
    at: str
    coverage: str
    reported: int
    expected: int
    signals: tuple[SignalRow, ...]
    failing_cohorts: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class WaveRow:
    index: int
    name: str
    canary: bool
    phase: str
    phase_label: str
    start: str
    end: str
    size: int
    counts: tuple[Count, ...]
    gate: GateRow | None
    required: tuple[str, ...]
    approvals: tuple[Mapping[str, str], ...]  # by, role, at, hash
    missing: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class IssueRow:
    id: int
    title: str
    selector: str
    severity: str
    severity_label: str
    status_label: str
    holds: int
    reported_during: str


@dataclass(frozen=True, slots=True)
class BreakdownRow:
    name: str
    total: int
    groups: Mapping[str, int]
    done_share: float


@dataclass(frozen=True, slots=True)
class Breakdown:
    key: str
    label: str
    rows: tuple[BreakdownRow, ...]
    hidden: int


@dataclass(frozen=True, slots=True)
class ReportView:
    lang: str
    t: Mapping[str, Any]
    rollout: str
    phase: str
    phase_label: str
    plan_hash: str
    started_by: str
    started_at: str
    as_of: str
    light: Light
    light_label: str
    light_mark: str
    reasons: tuple[tuple[str, str], ...]  # (light, sentence)
    totals: tuple[Count, ...]
    total: int
    waves: tuple[WaveRow, ...]
    issues: tuple[IssueRow, ...]
    timeline_svg: Markup
    signals_svg: Markup
    sites: Breakdown
    cohorts: tuple[Breakdown, ...]
    groups: tuple[tuple[str, str], ...]  # (group, label), in GROUPS order


def when(iso: str | None) -> str:
    """'2027-02-03T09:00:00+00:00' -> '2027-02-03 09:00 UTC'; other offsets as '+09:00'."""
    if not iso:
        return ""
    moment = dt.datetime.fromisoformat(iso)
    offset = moment.strftime("%z")
    zone = "UTC" if offset in ("", "+0000") else f"{offset[:3]}:{offset[3:]}"
    return f"{moment:%Y-%m-%d %H:%M} {zone}"


def _counts(by_phase: Mapping[str, int], t: Mapping[str, Any]) -> tuple[Count, ...]:
    return tuple(Count(p.value, t["device_phase"][p.value], by_phase[p.value]) for p in DevicePhase
                 if by_phase.get(p.value))


def _signal_row(s: Mapping[str, Any], t: Mapping[str, Any]) -> SignalRow:
    lower = s["name"] == TICKETS
    value = "–" if s["value"] is None else format(s["value"], ".1f" if lower else ".3f")
    pass_rule = f"{'≤' if lower else '≥'} {s['pass']:g}"
    rollback_rule = f"{'>' if lower else '<'} {s['rollback']:g}"
    return SignalRow(s["name"], t["signals"].get(s["name"], s["name"]), value, pass_rule, rollback_rule,
                     s["measured"], s["verdict"], t["verdicts"][s["verdict"]])


def _gate_row(record: Mapping[str, Any] | None, t: Mapping[str, Any]) -> GateRow | None:
    if not record:
        return None
    g = record["gate"]
    return GateRow(g["verdict"], t["verdicts"][g["verdict"]], when(record["at"]), f"{g['coverage']:.0%}",
                   g["reported"], g["expected"], tuple(_signal_row(s, t) for s in g["signals"]),
                   tuple(c["selector"] for c in g["failing_cohorts"]))


def _wave_rows(status: Mapping[str, Any], plan: Mapping[str, Any], t: Mapping[str, Any]) -> tuple[WaveRow, ...]:
    planned = {w["name"]: w for w in plan["waves"]}
    rows = []
    for w in status["waves"]:
        p = planned.get(w["name"], {})
        approvals = tuple({"by": a["by"], "role": a["role"], "at": when(a["at"]), "hash": a["hash"][:12]}
                          for a in w["approvals"]["valid"])
        rows.append(WaveRow(w["index"], w["name"], w["canary"], w["phase"], t["wave_phase"][w["phase"]],
                            p.get("start", ""), p.get("end", ""), sum(w["devices"].values()),
                            _counts(w["devices"], t), _gate_row(w["gate"], t), tuple(w["approvals"]["required"]),
                            approvals, tuple(w["approvals"]["missing"])))
    return tuple(rows)


def _issue_rows(status: Mapping[str, Any], t: Mapping[str, Any]) -> tuple[IssueRow, ...]:
    """Issues still open or worked around; resolved and accepted ones are done."""
    return tuple(
        IssueRow(i["id"], i["title"], i["selector"], i["severity"] or "untriaged",
                 t["severities"][i["severity"]] if i["severity"] else t["untriaged"],
                 t["issue_statuses"][i["status"]], i["holds_devices"], i["reported_during"] or "")
        for i in status["issues"] if i["status"] in ("open", "workaround"))


def breakdown(devices: Mapping[str, DeviceState], inventory: Mapping[str, Device], key: str, label: str,
              limit: int | None = None) -> Breakdown:
    """Devices per value of ``key`` by phase group; with ``limit``, the most troubled values first."""
    counts: dict[str, Counter[str]] = {}
    for device_id, state in devices.items():
        for value in inventory[device_id].values_of(key):
            counts.setdefault(value, Counter())[GROUP_OF[state.phase.value]] += 1
    rows = [BreakdownRow(name, sum(c.values()), {g: c[g] for g in GROUPS}, c["verified"] / sum(c.values()))
            for name, c in counts.items()]
    if limit is None:
        rows.sort(key=lambda r: (-r.total, r.name))
        return Breakdown(key, label, tuple(rows), 0)
    rows.sort(key=lambda r: (-(r.groups["held"] + r.groups["rolled_back"]), -r.total, r.name))
    return Breakdown(key, label, tuple(rows[:limit]), max(len(rows) - limit, 0))


def _signal_bars(status: Mapping[str, Any]) -> list[tuple[str, Sequence[SignalBar]]]:
    out: list[tuple[str, Sequence[SignalBar]]] = []
    for w in status["waves"]:
        if w["gate"]:
            bars = [SignalBar(s["name"], s["value"], s["pass"], s["rollback"])
                    for s in w["gate"]["gate"]["signals"] if s["name"] in RATE_SIGNALS]
            out.append((w["name"], bars))
    return out


def _reasons(status: Mapping[str, Any], t: Mapping[str, Any]) -> tuple[tuple[str, str], ...]:
    out = []
    for r in assess_light(status).reasons:
        params = dict(r.params)
        if "phase" in params:
            params["phase"] = t["wave_phase"][params["phase"]]
        if "verdict" in params:
            params["verdict"] = t["verdicts"][params["verdict"]]
        if "holds" in params:
            params["holds"] = f"{params['holds']:,}"
        out.append((r.light.value, t["reasons"][r.code].format(**params)))
    return tuple(out)


def report_view(inp: ReportInput, lang: str) -> ReportView:
    """The report's content in ``lang`` (pure: everything comes from ``inp``)."""
    t = labels(lang)
    s = inp.status
    light = assess_light(s).light
    names = {w["index"]: w["name"] for w in s["waves"]}
    bars = _signal_bars(s)
    tl = inp.timeline
    return ReportView(
        lang, t, s["rollout"], s["phase"], t["rollout_phase"][s["phase"]], s["plan_hash"], s["started_by"],
        when(s["started_at"]), when(tl.last_at or s["started_at"]), light, t["light"][light.value],
        LIGHT_MARK[light], _reasons(s, t), _counts(s["devices"], t), sum(s["devices"].values()),
        _wave_rows(s, inp.plan, t), _issue_rows(s, t),
        timeline_svg(tl.points, tl.markers, names, t["series"], t["chart_timeline"], tl.last_at) if tl.points else Markup(""),
        signals_svg(bars, t["signals"], t["chart_signals"]) if bars else Markup(""),
        breakdown(inp.devices, inp.inventory, "site", t["site"]),
        tuple(breakdown(inp.devices, inp.inventory, k, t["keys"][k], COHORT_ROWS) for k in COHORT_KEYS),
        tuple((g, t["groups"][g]) for g in GROUPS),
    )


def render_report(view: ReportView, fmt: str) -> str:
    if fmt == "html":
        return render_html("reports/status.html.j2", v=view)
    if fmt == "markdown":
        return render("reports/status.md.j2", v=view)
    raise InputError(f"--format {fmt!r}: the report is html or markdown.")


def make_report(store: StateStore, rollout_id: str, *, lang: str = "en", fmt: str = "html") -> str:
    """Read, build and render the report of ``rollout_id`` in one call (the CLI's verb)."""
    labels(lang)
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: the report is html or markdown.")
    return render_report(report_view(read_report_input(store, rollout_id), lang), fmt)
