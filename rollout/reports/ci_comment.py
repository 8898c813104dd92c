"""``rollout ci-comment``: the pull-request comment that says what a change does to the rollout plan.

``ci_comment_markdown(diff)`` is pure. The comment opens with ``MARKER``, a hidden HTML comment, so
a CI job finds its earlier comment and edits it in place (one sticky comment per pull request),
then summarises the diff for reviewers: devices moved to another wave (and added or removed),
waves resized (a wave's device count changed, or a wave appeared or went), the canary's cohort
coverage before and after, the approvals the change voids (waves whose content hash changed), and
the projected completion; the full ``rollout diff --format markdown`` follows in a fold.
Any CI system can post it; ``.github/workflows/preview.yml`` does on GitHub.
"""

from __future__ import annotations

from rollout.plan.diff import PlanDiff
from rollout.reports.render import diff_markdown, signed
from rollout.templating import md_escape, render

MARKER = "<!-- zt-rollout:plan-diff -->"
# GitHub refuses comments over 65,536 characters; the diff's tables are capped well below that.
MAX_CHARS = 65_000


def resized(d: PlanDiff) -> list[str]:
    """'wave-2 500 → 520 (+20)', 'wave-9 new (40)', 'wave-8 removed (was 40)' for each resized wave,
    as markdown (the wave's name escaped)."""
    out = []
    for w in d.waves:
        name = md_escape(w.name)
        if w.old_size is None:
            out.append(f"{name} new ({w.new_size or 0:,})")
        elif w.new_size is None:
            out.append(f"{name} removed (was {w.old_size:,})")
        elif w.old_size != w.new_size:
            out.append(f"{name} {w.old_size:,} → {w.new_size:,} ({signed(w.new_size - w.old_size)})")
    return out


def ci_comment_markdown(d: PlanDiff) -> str:
    """The sticky comment's markdown (starts with ``MARKER``)."""
    text = render("reports/ci-comment.md.j2", d=d, marker=MARKER, resized=resized(d), signed=signed,
                  cover=d.new_coverage[0] - d.old_coverage[0], body=diff_markdown(d))
    if len(text) > MAX_CHARS:
        text = text[:MAX_CHARS] + "\n\n… (cut: run `rollout diff --format json` for everything)\n"
    return text
