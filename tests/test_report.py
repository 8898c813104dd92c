"""The status report: the traffic-light rule (table-driven), the timeline replay, the breakdowns,
the HTML and markdown against the state they were made from, and the `rollout report` command."""

from __future__ import annotations

import re
from collections import Counter
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from rollout.cli.main import cli
from rollout.core.audit import Event
from rollout.core.timeline import migration_timeline
from rollout.errors import InputError
from rollout.reports.charts import nice_ceiling, signals_floor
from rollout.reports.light import Light, assess_light
from rollout.reports.report import (
    GROUP_OF,
    ReportInput,
    breakdown,
    make_report,
    read_report_input,
    render_report,
    report_view,
    when,
)
from rollout.reports.status import status_json
from rollout.reports.text import labels
from rollout.store.sqlite import SqliteStore
from tests.report_builders import Rehearsed, issue_doc, rehearsed, status_doc, wave_doc
from tests.rollout_builders import fresh_store

__all__ = ["rehearsed"]  # the session fixture, imported for pytest

RUNNING = [wave_doc("canary", "passed"), wave_doc("wave-1", "baking", "pending"), wave_doc("final", "planned")]


def waves(*phases: tuple[str, str | None]) -> list[dict[str, Any]]:
    return [wave_doc(f"w{i}", phase, verdict) for i, (phase, verdict) in enumerate(phases)]


# (case, changes to a healthy running status, expected light, expected reason codes in order)
LIGHT_CASES: list[tuple[str, dict[str, Any], Light, list[str]]] = [
    ("running on plan", {"waves": RUNNING}, Light.GREEN, []),
    ("waiting for an approval", {"waves": waves(("passed", "pass"), ("planned", None))}, Light.GREEN, []),
    ("completed cleanly", {"phase": "completed", "waves": waves(("passed", "pass"), ("passed", "pass"))},
     Light.GREEN, []),
    ("minor issue and resolved blocker", {"issues": [issue_doc(1, "minor"), issue_doc(2, "blocker", "resolved")]},
     Light.GREEN, []),
    ("blocker with a workaround", {"issues": [issue_doc(1, "blocker", "workaround")]}, Light.GREEN, []),
    ("paused", {"paused": {"paused": True, "reason": "change freeze"}}, Light.YELLOW, ["paused"]),
    ("a wave held", {"waves": waves(("passed", "pass"), ("held", "inconclusive"))}, Light.YELLOW, ["wave_held"]),
    ("baking, inconclusive", {"waves": waves(("baking", "inconclusive"))}, Light.YELLOW, ["gate_unsure"]),
    ("applying, telemetry error", {"waves": waves(("applying", "error"))}, Light.YELLOW, ["gate_unsure"]),
    ("passed wave's old inconclusive does not count", {"waves": waves(("passed", "inconclusive"))}, Light.GREEN, []),
    ("untriaged issue", {"issues": [issue_doc(1, None)]}, Light.YELLOW, ["untriaged"]),
    ("open major issue", {"issues": [issue_doc(1, "major")]}, Light.YELLOW, ["major"]),
    ("rolled back, resumed", {"waves": waves(("rolled_back", "fail"), ("baking", "pass"))}, Light.YELLOW,
     ["rolled_back"]),
    ("halted", {"halted": {"halted": True, "reason": "wave w1 failed"}}, Light.RED, ["halted"]),
    ("a wave failed", {"waves": waves(("failed", "fail"))}, Light.RED, ["wave_failing"]),
    ("a wave rolling back", {"waves": waves(("rolling_back", "fail"))}, Light.RED, ["wave_failing"]),
    ("open blocker", {"issues": [issue_doc(1, "blocker", holds=40)]}, Light.RED, ["blocker"]),
    ("the demo: halted, blocker, rolled back",
     {"halted": {"halted": True, "reason": "wave-4 failed"}, "waves": waves(("passed", "pass"), ("rolled_back", "fail")),
      "issues": [issue_doc(1, "blocker", holds=1530), issue_doc(2, "minor", "resolved")]},
     Light.RED, ["halted", "blocker", "rolled_back"]),
    ("worst first, then rule order",
     {"paused": {"paused": True, "reason": "r"}, "issues": [issue_doc(1, None), issue_doc(2, "blocker")],
      "waves": waves(("held", "inconclusive"), ("failed", "fail"))},
     Light.RED, ["wave_failing", "blocker", "paused", "wave_held", "untriaged"]),
]


@pytest.mark.parametrize(("case", "changes", "light", "codes"), LIGHT_CASES, ids=[c[0] for c in LIGHT_CASES])
def test_traffic_light_rule(case: str, changes: dict[str, Any], light: Light, codes: list[str]) -> None:
    result = assess_light(status_doc(**changes))
    assert result.light == light
    assert [r.code for r in result.reasons] == codes
    assert all(r.light.rank <= result.light.rank for r in result.reasons)


def test_reasons_carry_what_the_reader_needs() -> None:
    reasons = assess_light(status_doc(issues=[issue_doc(7, "blocker", holds=1530)])).reasons
    assert reasons[0].params == {"id": 7, "title": "issue 7", "selector": "model=X", "holds": 1530}


def ev(seq: int, at: str, kind: str, data: dict[str, Any]) -> Event:
    return Event(seq, f"2027-01-{at}+00:00", "driver", kind, data, "", "")


def test_timeline_replays_the_docstring_example() -> None:
    events = [
        ev(1, "12T09:00:00", "call.migrate.intent", {"op_id": "a", "wave": 0, "devices": ["D1", "D2"]}),
        ev(2, "12T09:00:00", "call.migrate.done", {"op_id": "a", "ok": 1, "failed": 1, "failures": {"D2": "x"}}),
        ev(3, "12T21:00:00", "devices.moved", {"devices": [["D1", "migrated", "verified"]]}),
        ev(4, "13T09:00:00", "devices.moved", {"devices": [["D2", "failed", "reverting"]]}),
        ev(5, "13T10:00:00", "call.revert.intent", {"op_id": "b", "wave": 0, "devices": ["D2"]}),
        ev(6, "13T10:00:00", "call.revert.done", {"op_id": "b", "ok": 1, "failed": 0, "failures": {}}),
    ]
    tl = migration_timeline(events)
    assert [(p.at[8:13], p.on_zero_trust, p.verified, p.reverted) for p in tl.points] == [
        ("12T09", 1, 0, 0), ("12T21", 1, 1, 0), ("13T10", 1, 1, 1)]
    assert tl.phases == {"D1": "verified", "D2": "reverted"}
    assert tl.last_at == "2027-01-13T10:00:00+00:00"


def test_timeline_of_a_real_rehearsal_ends_where_the_store_is(rehearsed: Rehearsed) -> None:
    store = SqliteStore(rehearsed.state)
    rid = store.rollout_ids()[0]
    tl = migration_timeline(store.events(rid))
    devices = store.devices(rid)
    assert {d: tl.phases.get(d, "pending") for d in devices} == {d: s.phase.value for d, s in devices.items()}
    counts = Counter(s.phase.value for s in devices.values())
    last = tl.points[-1]
    assert (last.on_zero_trust, last.verified, last.reverted) == (
        counts["migrated"] + counts["verified"] + counts["deferred"], counts["verified"], counts["reverted"])
    assert [m.wave for m in tl.markers] == sorted(m.wave for m in tl.markers)
    assert all(a.at <= b.at for a, b in zip(tl.points, tl.points[1:]))


def test_breakdown_counts_every_device_once_per_value(rehearsed: Rehearsed) -> None:
    store = SqliteStore(rehearsed.state)
    rid = store.rollout_ids()[0]
    devices, inventory = store.devices(rid), store.inventory(rid)
    sites = breakdown(devices, inventory, "site", "Site")
    assert sum(r.total for r in sites.rows) == len(devices)
    expected = Counter((inventory[d].site, GROUP_OF[s.phase.value]) for d, s in devices.items())
    assert {(r.name, g): n for r in sites.rows for g, n in r.groups.items() if n} == dict(expected)
    models = breakdown(devices, inventory, "model", "Model", limit=3)
    assert len(models.rows) == 3 and models.hidden == len({d.model for d in inventory.values()}) - 3
    trouble = [r.groups["held"] + r.groups["rolled_back"] for r in models.rows]
    assert trouble == sorted(trouble, reverse=True)


def test_chart_scales() -> None:
    assert [nice_ceiling(v) for v in (0, 1, 7, 12, 1234, 4941, 10_000)] == [1, 1, 10, 20, 2000, 5000, 10_000]
    assert [signals_floor(v) for v in ([1.0, 0.98, 0.9], [0.416, 0.9], [0.0], [])] == [0.8, 0.3, 0.0, 0.8]
    assert when("2027-02-03T09:00:00+00:00") == "2027-02-03 09:00 UTC"
    assert when("2027-02-03T18:00:00.123+09:00") == "2027-02-03 18:00 +09:00"


class _Refs(HTMLParser):
    """Every URL the page would load by itself: src, link href, url(...), @import, object data."""

    def __init__(self) -> None:
        super().__init__()
        self.loads: list[str] = []
        self.scripts = 0

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        self.scripts += tag == "script"
        for name in ("src", "srcset", "data", "poster", "background"):
            if a.get(name):
                self.loads.append(f"{tag} {name}={a[name]}")
        if tag == "link" and a.get("href"):
            self.loads.append(f"link href={a['href']}")


def test_html_report_is_self_contained_and_shows_the_state(rehearsed: Rehearsed) -> None:
    store = SqliteStore(rehearsed.state)
    rid = store.rollout_ids()[0]
    html = make_report(store, rid, lang="en", fmt="html")
    refs = _Refs()
    refs.feed(html)
    assert refs.loads == [] and refs.scripts == 0
    assert not re.search(r"url\(|@import|https?://(?!www\.w3\.org/2000/svg\")", html)
    status = status_json(store, rid)
    assert f'data-light="{assess_light(status).light.value}"' in html
    for phase, n in status["devices"].items():
        assert f'<span class="n" data-phase="{phase}">{n:,}</span>' in html
    for w in status["waves"]:
        assert f'<tr data-wave="{w["name"]}">' in html
    assert html.count('<polyline class="series"') == 3
    gated = [w for w in status["waves"] if w["gate"]]
    assert html.count('<rect class="bar"') == sum(
        1 for w in gated for s in w["gate"]["gate"]["signals"] if s["name"] != "tickets_per_100" and s["value"] is not None)


def test_values_are_escaped(rehearsed: Rehearsed, tmp_path: Path) -> None:
    store = SqliteStore(rehearsed.state)
    rid = store.rollout_ids()[0]
    inp = read_report_input(store, rid)
    status = dict(inp.status)
    status["issues"] = [dict(issue_doc(9, "major"), title='<script>alert("x")</script> & <b>')]
    html = render_report(report_view(ReportInput(status, inp.plan, inp.devices, inp.inventory, inp.timeline), "en"),
                         "html")
    assert "<script>" not in html and "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; &lt;b&gt;" in html


def test_markdown_matches_the_status(rehearsed: Rehearsed) -> None:
    store = SqliteStore(rehearsed.state)
    rid = store.rollout_ids()[0]
    status = status_json(store, rid)
    md = make_report(store, rid, lang="en", fmt="markdown")
    light = assess_light(status)
    assert md.splitlines()[0] == f"### {'🔴🟡🟢'['red yellow green'.split().index(light.light.value)]} " \
                                 f"{light.light.value.upper()} · Zero-trust rollout status: {rid}"
    assert len([line for line in md.splitlines() if line.startswith("- ")]) == len(light.reasons)
    for w in status["waves"]:
        row = next(line for line in md.splitlines() if line.startswith(f"| {w['name']} |"))
        assert f"| {sum(w['devices'].values()):,} |" in row
    for issue in status["issues"]:
        if issue["status"] in ("open", "workaround"):
            assert f"| #{issue['id']} |" in md and f"| {issue['holds_devices']:,} |" in md
    site_rows = [line for line in md.split("**By site**")[1].splitlines() if line.startswith("| ") and "---" not in line]
    assert sum(int(r.split("|")[2].strip().replace(",", "")) for r in site_rows[1:]) == len(store.devices(rid))


def test_japanese_edition_has_japanese_labels(rehearsed: Rehearsed) -> None:
    store = SqliteStore(rehearsed.state)
    rid = store.rollout_ids()[0]
    html = make_report(store, rid, lang="ja", fmt="html")
    ja = labels("ja")
    for label in (ja["title"], ja["waves"], ja["issues"], ja["sites"], ja["chart_timeline"], ja["light"]["red"]):
        assert label in html
    assert '<html lang="ja">' in html and "Zero-trust rollout status" not in html
    assert "ゼロトラスト移行 状況レポート" in make_report(store, rid, lang="ja", fmt="markdown")


def test_unknown_language_or_format_is_an_input_error(rehearsed: Rehearsed) -> None:
    store = SqliteStore(rehearsed.state)
    rid = store.rollout_ids()[0]
    with pytest.raises(InputError, match="--lang 'fr'.*pass --lang en or --lang ja"):
        make_report(store, rid, lang="fr")
    with pytest.raises(InputError, match="--format 'pdf'"):
        make_report(store, rid, fmt="pdf")


def test_cli_report_writes_the_file(rehearsed: Rehearsed, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(cli, ["report", "--state", f"sqlite:{rehearsed.state}", "--out", str(out),
                                      "--lang", "ja"])
    assert result.exit_code == 0, result.output
    size = out.stat().st_size
    assert result.output == f"Wrote {out} (html report, ja, {size:,} bytes, readable by you only).\n"
    assert out.stat().st_mode & 0o777 == 0o600
    assert out.read_text(encoding="utf-8").startswith("<!DOCTYPE html>")


def test_cli_report_markdown_to_stdout(rehearsed: Rehearsed) -> None:
    result = CliRunner().invoke(cli, ["report", "--state", str(rehearsed.state), "--format", "markdown"])
    store = SqliteStore(rehearsed.state)
    assert result.exit_code == 0
    assert result.output == make_report(store, store.rollout_ids()[0], lang="en", fmt="markdown")


def test_cli_report_bad_input(rehearsed: Rehearsed, tmp_path: Path) -> None:
    runner = CliRunner()
    bad_lang = runner.invoke(cli, ["report", "--state", str(rehearsed.state), "--lang", "fr"])
    assert bad_lang.exit_code == 2
    assert "Invalid value for '--lang': 'fr' is not one of 'en', 'ja'." in bad_lang.output
    unknown = runner.invoke(cli, ["report", "--state", str(rehearsed.state), "--rollout", "nope"])
    assert unknown.exit_code == 1
    assert unknown.output.startswith("error: no rollout 'nope' in ")
    missing = runner.invoke(cli, ["report", "--state", str(tmp_path / "empty.db")])
    assert missing.exit_code == 2
    assert missing.output == (f"error: {tmp_path / 'empty.db'}: no such state file (nothing was created); check "
                              "--state or ROLLOUT_STATE, or start a rollout there with `rollout start`.\n")
    assert not (tmp_path / "empty.db").exists()
    SqliteStore(tmp_path / "empty.db").close()
    empty = runner.invoke(cli, ["report", "--state", str(tmp_path / "empty.db")])
    assert empty.exit_code == 2
    assert empty.output == (f"error: sqlite:{tmp_path / 'empty.db'} holds no rollout; start one with "
                            "`rollout start --plan plan.json`.\n")


def test_report_of_a_rollout_just_started(tmp_path: Path) -> None:
    store, rid = fresh_store(tmp_path / "fresh.db")
    html = make_report(store, rid, lang="en")
    assert 'data-light="green"' in html and labels("en")["all_clear"] in html
    assert labels("en")["no_timeline"] in html and labels("en")["no_signals"] in html
    assert '<polyline class="series"' not in html and '<rect class="bar"' not in html
    md = make_report(store, rid, lang="ja", fmt="markdown")
    assert md.startswith(f"### 🟢 緑 · ゼロトラスト移行 状況レポート: {rid}\n")
