"""The words of the status report in each of its languages (``--lang en|ja``).

Every label the report's templates print comes from ``labels(lang)``; phases, verdicts, severities
and the traffic light's reasons are translated here, so a Japanese edition has Japanese labels
throughout. Free text recorded in the state (an issue's title, a halt reason, a gate's sentences)
is quoted as it was written.
"""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType
from typing import Any

from rollout.errors import InputError

LANGS = ("en", "ja")
FORMATS = ("html", "markdown")  # of the status report

_EN: dict[str, Any] = {
    "title": "Zero-trust rollout status",
    "as_of": "As of", "plan": "Plan", "started": "Started", "by": "by", "phase": "Rollout",
    "light": {"red": "RED", "yellow": "YELLOW", "green": "GREEN"},
    "why": "Why", "all_clear": "Every wave is on track: no halt, pause, held wave, failed gate or open issue.",
    "devices": "Devices", "total": "Total", "waves": "Waves", "wave": "Wave", "dates": "Dates",
    "state": "State", "size": "Devices", "by_state": "Devices by state", "gate": "Gate",
    "verdict": "Verdict", "signal": "Signal", "value": "Value", "pass": "Pass", "rollback": "Roll back",
    "measured": "Measured on", "coverage": "Coverage", "reported": "reported",
    "approvals": "Approvals", "required": "Required", "missing": "Missing", "who": "Who", "role": "Role",
    "when": "When", "hash": "Hash", "none": "none", "no_gate": "not judged yet",
    "issues": "Open triage issues", "no_issues": "No open issue.", "id": "#", "severity": "Severity",
    "issue_status": "Status", "issue": "Issue", "selector": "Cohort", "holds": "Devices held",
    "reported_during": "Reported during", "untriaged": "untriaged",
    "failing_cohorts": "Cohorts rolled back",
    "chart_timeline": "Migrated devices over time", "chart_signals": "Signal rates per wave (last gate decision)",
    "series": {"on_zero_trust": "On zero trust", "verified": "Verified", "reverted": "Rolled back"},
    "no_timeline": "No device has moved yet.", "no_signals": "No wave has a gate decision yet.",
    "sites": "By site", "site": "Site", "cohorts": "By cohort", "cohort": "Cohort", "done": "Done",
    "more": "{n} more not shown",
    "groups": {"verified": "Verified", "in_progress": "In progress", "waiting": "Waiting", "held": "Held",
               "rolled_back": "Rolled back", "excluded": "Excluded"},
    "keys": {"model": "Model", "os_version": "OS build", "department": "Department"},
    "rollout_phase": {"running": "running", "paused": "paused", "halted": "halted", "completed": "completed"},
    "wave_phase": {"planned": "planned", "approved": "approved", "applying": "applying", "baking": "baking",
                   "passed": "passed", "held": "held", "failed": "failed", "rolling_back": "rolling back",
                   "rolled_back": "rolled back"},
    "device_phase": {"pending": "pending", "migrating": "migrating", "migrated": "migrated", "verified": "verified",
                     "failed": "failed", "reverting": "reverting", "reverted": "reverted", "held": "held",
                     "deferred": "deferred", "excluded": "excluded"},
    "verdicts": {"pass": "pass", "pending": "pending", "inconclusive": "inconclusive", "error": "error",
                 "fail": "fail"},
    "severities": {"blocker": "blocker", "major": "major", "minor": "minor"},
    "issue_statuses": {"open": "open", "workaround": "workaround", "resolved": "resolved", "accepted": "accepted"},
    "signals": {"kitting": "Kitting", "signin": "Sign-in", "ztna": "ZTNA connection", "app": "App checks",
                "tickets_per_100": "Tickets per 100 devices"},
    "reasons": {
        "halted": "The rollout is halted: {reason}",
        "wave_failing": "Wave {wave} is {phase}.",
        "blocker": "Blocker #{id} is open ({selector}): it holds {holds} devices. {title}",
        "paused": "The rollout is paused: {reason}",
        "duties_waived": "Separation of duties is waived by {by} ({role}): {starter} may approve waves. {reason}",
        "wave_held": "Wave {wave} is held for a human decision.",
        "gate_unsure": "Wave {wave}'s last gate verdict is {verdict}.",
        "untriaged": "Issue #{id} is not triaged yet: {title}",
        "major": "Major issue #{id} is open ({selector}): {title}",
        "rolled_back": "Wave {wave} was rolled back.",
    },
}

_JA: dict[str, Any] = {
    "title": "ゼロトラスト移行 状況レポート",
    "as_of": "時点", "plan": "計画", "started": "開始", "by": "開始者", "phase": "ロールアウト",
    "light": {"red": "赤", "yellow": "黄", "green": "緑"},
    "why": "判定理由", "all_clear": "すべてのウェーブが順調です（停止・一時停止・保留・ゲート不合格・未解決の課題なし）。",
    "devices": "端末", "total": "合計", "waves": "ウェーブ", "wave": "ウェーブ", "dates": "日程",
    "state": "状態", "size": "端末数", "by_state": "状態別の端末数", "gate": "ゲート",
    "verdict": "判定", "signal": "指標", "value": "値", "pass": "合格基準", "rollback": "ロールバック基準",
    "measured": "測定台数", "coverage": "報告率", "reported": "台が報告",
    "approvals": "承認", "required": "必要な承認", "missing": "未承認", "who": "承認者", "role": "役割",
    "when": "日時", "hash": "ハッシュ", "none": "なし", "no_gate": "未判定",
    "issues": "未解決のトリアージ課題", "no_issues": "未解決の課題はありません。", "id": "番号", "severity": "重大度",
    "issue_status": "状況", "issue": "課題", "selector": "対象コホート", "holds": "保留中の端末",
    "reported_during": "報告時のウェーブ", "untriaged": "未分類",
    "failing_cohorts": "ロールバックしたコホート",
    "chart_timeline": "移行済み端末数の推移", "chart_signals": "ウェーブ別の指標（直近のゲート判定）",
    "series": {"on_zero_trust": "ゼロトラスト移行済み", "verified": "確認済み", "reverted": "切り戻し済み"},
    "no_timeline": "まだ移行した端末はありません。", "no_signals": "ゲート判定のあるウェーブはまだありません。",
    "sites": "拠点別", "site": "拠点", "cohorts": "コホート別", "cohort": "コホート", "done": "完了率",
    "more": "ほか {n} 件は省略",
    "groups": {"verified": "確認済み", "in_progress": "移行中", "waiting": "待機中", "held": "保留",
               "rolled_back": "切り戻し", "excluded": "対象外"},
    "keys": {"model": "機種", "os_version": "OS ビルド", "department": "部署"},
    "rollout_phase": {"running": "進行中", "paused": "一時停止中", "halted": "停止中", "completed": "完了"},
    "wave_phase": {"planned": "計画済み", "approved": "承認済み", "applying": "適用中", "baking": "経過観察中",
                   "passed": "合格", "held": "保留", "failed": "不合格", "rolling_back": "ロールバック中",
                   "rolled_back": "ロールバック済み"},
    "device_phase": {"pending": "待機中", "migrating": "移行中", "migrated": "移行済み", "verified": "確認済み",
                     "failed": "失敗", "reverting": "切り戻し中", "reverted": "切り戻し済み", "held": "保留",
                     "deferred": "次回判定", "excluded": "対象外"},
    "verdicts": {"pass": "合格", "pending": "判定待ち", "inconclusive": "判定保留", "error": "エラー",
                 "fail": "不合格"},
    "severities": {"blocker": "ブロッカー", "major": "重大", "minor": "軽微"},
    "issue_statuses": {"open": "未解決", "workaround": "回避策あり", "resolved": "解決済み", "accepted": "受容"},
    "signals": {"kitting": "キッティング", "signin": "サインイン", "ztna": "ZTNA 接続", "app": "アプリ確認",
                "tickets_per_100": "問い合わせ件数（100 台あたり）"},
    "reasons": {
        "halted": "ロールアウトは停止しています: {reason}",
        "wave_failing": "ウェーブ {wave} は{phase}です。",
        "blocker": "ブロッカー #{id} が未解決です（{selector}）: {holds} 台を保留中。{title}",
        "paused": "ロールアウトは一時停止中です: {reason}",
        "duties_waived": "職務分離は {by}（{role}）により免除されています: {starter} がウェーブを承認できます。{reason}",
        "wave_held": "ウェーブ {wave} は担当者の判断待ちで保留中です。",
        "gate_unsure": "ウェーブ {wave} の直近のゲート判定は「{verdict}」です。",
        "untriaged": "課題 #{id} はまだ分類されていません: {title}",
        "major": "重大な課題 #{id} が未解決です（{selector}）: {title}",
        "rolled_back": "ウェーブ {wave} はロールバックされました。",
    },
}

_LABELS: Mapping[str, Mapping[str, Any]] = MappingProxyType({"en": _EN, "ja": _JA})


def labels(lang: str) -> Mapping[str, Any]:
    """The report's labels in ``lang``; an unknown language is an input error naming the known ones."""
    try:
        return _LABELS[lang]
    except KeyError:
        raise InputError(f"--lang {lang!r}: the report is written in {' and '.join(LANGS)}; "
                         "pass --lang en or --lang ja.") from None
