"""Plans, diffs and explanations as terminal tables (rich) and markdown (templates/reports/)."""

from __future__ import annotations

from rich import box
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from rollout.plan.diff import PlanDiff
from rollout.plan.explain import Explanation
from rollout.plan.planner import Plan
from rollout.templating import render

MAX_MARKDOWN_ROWS = 200


def format_duration(seconds: int) -> str:
    """604800 -> '7d', 129600 -> '36h', 5400 -> '90m', 0 -> '0'."""
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds and seconds % size == 0:
            return f"{seconds // size}{unit}"
    return f"{seconds}s" if seconds else "0"


def signed(n: int) -> str:
    return f"+{n:,}" if n > 0 else (f"{n:,}" if n < 0 else "0")


def plan_markdown(plan: Plan, min_size: int) -> str:
    return render("reports/plan.md.j2", plan=plan, min_size=min_size, duration=format_duration)


def plan_table(plan: Plan, min_size: int) -> Group:
    table = Table(title=f"Rollout plan {plan.rollout}", box=box.SIMPLE_HEAVY, title_justify="left")
    for name, justify in (("#", "right"), ("wave", "left"), ("devices", "right"), ("size", "left"),
                          ("sites", "left"), ("approvals", "left"), ("bake", "left"), ("start", "left"),
                          ("last migration", "left"), ("bake until", "left"), ("hash", "left")):
        table.add_column(name, justify=justify)  # type: ignore[arg-type]
    for w in plan.waves:
        top_sites = ", ".join(f"{s} {n:,}" for s, n in sorted(w.sites, key=lambda x: (-x[1], x[0]))[:3])
        table.add_row(str(w.index), w.name + (" (canary)" if w.canary and "canary" not in w.name else ""), f"{len(w.devices):,}", w.size_rule,
                      top_sites, ",".join(w.approvals), format_duration(w.bake_seconds), str(w.dates.start),
                      str(w.dates.end), str(w.dates.bake_until), w.hash[:12])
    c = plan.coverage
    lines: list[RenderableType] = [
        table,
        Text(f"Canary covers {c.cohorts_covered} of {c.cohorts_total} cohorts of at least {min_size} devices; "
             f"{c.fleet_share_covered * 100:.1f}% of the fleet has a canary for every cohort it belongs to."),
        Text(f"{plan.devices_total:,} devices, {len(plan.excluded):,} excluded. Projected completion "
             f"{plan.projected_completion}. Plan hash {plan.plan_hash}."),
    ]
    for u in c.uncovered:
        lines.append(Text(f"  no canary: {u.label} ({u.size} devices): {u.reason}", style="yellow"))
    for warning in plan.warnings:
        lines.append(Text(f"warning: {warning}", style="yellow"))
    return Group(*lines)


def diff_markdown(d: PlanDiff) -> str:
    shift = d.completion_shift_days
    text = "no change" if shift == 0 else f"{signed(shift)} days, {shift / 7:+.1f} weeks"
    return render("reports/diff.md.j2", d=d, signed=signed, shift=text, max_rows=MAX_MARKDOWN_ROWS)


def diff_table(d: PlanDiff) -> Group:
    if d.identical:
        return Group(Text(f"No change: both plans have hash {d.new_hash}."))
    table = Table(box=box.SIMPLE_HEAVY)
    for name in ("wave", "before", "after", "change", "approvals"):
        table.add_column(name, justify="right" if name in ("before", "after", "change") else "left")
    for w in d.waves:
        state = ("new wave" if w.old_hash is None else "wave removed" if w.new_hash is None
                 else "VOIDED" if w.changed else "kept")
        table.add_row(w.name, "-" if w.old_size is None else f"{w.old_size:,}",
                      "-" if w.new_size is None else f"{w.new_size:,}", signed((w.new_size or 0) - (w.old_size or 0)),
                      state)
    shift = d.completion_shift_days
    parts: list[RenderableType] = [
        Text(f"Plan hash {d.old_hash[:12]} -> {d.new_hash[:12]}: {len(d.moved):,} devices moved, "
             f"{len(d.added):,} added, {len(d.removed):,} removed."),
        table,
        Text(f"Coverage {d.old_coverage[0]}/{d.old_coverage[1]} -> {d.new_coverage[0]}/{d.new_coverage[1]} cohorts; "
             f"completion {d.old_completion} -> {d.new_completion} ({signed(shift)} days)."),
    ]
    for dev, a, b in d.moved[:20]:
        parts.append(Text(f"  moved {dev}: {a} -> {b}"))
    if len(d.moved) > 20:
        parts.append(Text(f"  ... and {len(d.moved) - 20:,} more (use --format json for all)"))
    return Group(*parts)


def explanation_text(e: Explanation) -> str:
    lines = [f"{e.device_id}: {e.wave or 'not in any wave'}"]
    lines += [f"  - {r}" for r in e.reasons]
    if e.cohorts:
        lines.append("  cohorts:")
        for c in e.cohorts:
            status = (f"canary {c['canary']}" if c["canary"] else
                      ("NO CANARY" if c["eligible"] else "below the minimum size for a canary"))
            lines.append(f"    {c['cohort']} ({c['devices']:,} devices): {status}")
    return "\n".join(lines)
