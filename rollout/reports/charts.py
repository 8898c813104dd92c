"""Inline SVG charts for the status report: no script, no external asset, every label escaped.

``timeline_svg`` draws step lines of device counts over time with a dashed marker where each wave
started; ``signals_svg`` draws, per wave, one bar per rate signal from the axis floor up to its
value, with a green tick at its pass threshold and a red tick at its rollback threshold. The value
axis of ``signals_svg`` starts at the floor of the lowest value or threshold minus 0.05, rounded
down to a tenth (0.416 -> 0.3), so that 0.97 and 0.99 do not look the same.
Both return ``markupsafe.Markup`` so the autoescaping report template embeds them as they are.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from rollout.core.timeline import SERIES, Marker, Point

WIDTH, HEIGHT = 760, 300
LEFT, RIGHT, TOP, BOTTOM = 60, 16, 16, 64
SERIES_COLOURS = {"on_zero_trust": "#1565c0", "verified": "#2e7d32", "reverted": "#c62828"}
SIGNAL_COLOURS = ("#1565c0", "#6a1b9a", "#00838f", "#ef6c00")
DAY = 86400.0


@dataclass(frozen=True, slots=True)
class SignalBar:
    signal: str
    value: float | None
    pass_threshold: float
    rollback_threshold: float


def nice_ceiling(value: float) -> float:
    """The smallest of 1, 2, 2.5, 5 x 10^k at or above ``value`` (1,234 -> 2,000; 0 -> 1)."""
    if value <= 0:
        return 1.0
    power = 10.0 ** math.floor(math.log10(value))
    return next(float(step * power) for step in (1, 2, 2.5, 5, 10) if step * power >= value)


def _epoch(iso: str) -> float:
    return dt.datetime.fromisoformat(iso).timestamp()


def _text(x: float, y: float, label: object, anchor: str = "middle", cls: str = "") -> str:
    klass = f' class="{cls}"' if cls else ""
    return f'<text x="{x:.1f}" y="{y:.1f}" text-anchor="{anchor}"{klass}>{escape(str(label))}</text>'


def _frame(chart_id: str, title: str, body: list[str]) -> Markup:
    head = (f'<svg id="{escape(chart_id)}" class="chart" role="img" aria-label="{escape(title)}" '
            f'viewBox="0 0 {WIDTH} {HEIGHT}" xmlns="http://www.w3.org/2000/svg"><title>{escape(title)}</title>')
    return Markup(head + "".join(body) + "</svg>")


def _y_axis(top: float, bottom_value: float, fmt: str, steps: int = 5) -> tuple[list[str], float, float]:
    """Grid lines and labels for values ``bottom_value``..``top``; returns them and the value range."""
    body = []
    plot_h = HEIGHT - TOP - BOTTOM
    for i in range(steps + 1):
        value = bottom_value + (top - bottom_value) * i / steps
        y = HEIGHT - BOTTOM - plot_h * i / steps
        body.append(f'<line class="grid" x1="{LEFT}" y1="{y:.1f}" x2="{WIDTH - RIGHT}" y2="{y:.1f}"/>')
        body.append(_text(LEFT - 6, y + 4, format(value, fmt), "end", "tick"))
    return body, bottom_value, top


def _legend(items: Sequence[tuple[str, str]]) -> list[str]:
    body, x = [], float(LEFT)
    for colour, label in items:
        body.append(f'<rect x="{x:.1f}" y="{HEIGHT - 18}" width="12" height="12" fill="{colour}"/>')
        body.append(_text(x + 16, HEIGHT - 8, label, "start", "legend"))
        x += 28 + 9 * len(label) * (1.6 if any(ord(c) > 0x2E80 for c in label) else 1)
    return body


def timeline_svg(points: Sequence[Point], markers: Sequence[Marker], wave_names: Mapping[int, str],
                 series_labels: Mapping[str, str], title: str, until: str = "") -> Markup:
    """Step lines of each of ``SERIES`` over time (to ``until``, if later), wave starts as dashed verticals."""
    times = [_epoch(p.at) for p in points] + [_epoch(m.at) for m in markers] + ([_epoch(until)] if until else [])
    t0, t1 = (min(times), max(times)) if times else (0.0, DAY)
    t1 = max(t1, t0 + DAY)
    top = nice_ceiling(max((p.value(s) for p in points for s in SERIES), default=0))
    body, _, _ = _y_axis(top, 0, ",.0f")
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM

    def x_of(t: float) -> float:
        return LEFT + plot_w * (t - t0) / (t1 - t0)

    def y_of(v: float) -> float:
        return HEIGHT - BOTTOM - plot_h * v / top

    body += _time_ticks(t0, t1, x_of)
    for m in markers:
        x = x_of(_epoch(m.at))
        body.append(f'<line class="marker" x1="{x:.1f}" y1="{TOP}" x2="{x:.1f}" y2="{HEIGHT - BOTTOM}"/>')
        body.append(_text(x + 3, TOP + 10, wave_names.get(m.wave, str(m.wave)), "start", "marker-label"))
    for series in SERIES:
        coords, last_x, last_y = [f"{LEFT:.1f},{y_of(0):.1f}"], float(LEFT), y_of(0)
        for p in points:
            x = max(x_of(_epoch(p.at)), last_x)
            coords += [f"{x:.1f},{last_y:.1f}", f"{x:.1f},{y_of(p.value(series)):.1f}"]
            last_x, last_y = x, y_of(p.value(series))
        coords.append(f"{WIDTH - RIGHT:.1f},{last_y:.1f}")
        final = points[-1].value(series) if points else 0
        body.append(f'<polyline class="series" data-series="{series}" data-last="{final}" fill="none" '
                    f'stroke="{SERIES_COLOURS[series]}" stroke-width="2.5" points="{" ".join(coords)}"/>')
    body += _legend([(SERIES_COLOURS[s], series_labels[s]) for s in SERIES])
    return _frame("chart-timeline", title, body)


def _time_ticks(t0: float, t1: float, x_of: Callable[[float], float]) -> list[str]:
    """Date labels every 1, 2, 7, 14 or 28 days: the smallest step giving at most 8 labels."""
    span_days = (t1 - t0) / DAY
    step = next((s for s in (1, 2, 7, 14, 28) if span_days / s <= 8), math.ceil(span_days / 8))
    start = dt.datetime.fromtimestamp(t0, dt.UTC).replace(hour=0, minute=0, second=0, microsecond=0)
    body, day = [], start
    while day.timestamp() <= t1:
        if day.timestamp() >= t0:
            x = x_of(day.timestamp())
            body.append(f'<line class="axis" x1="{x:.1f}" y1="{HEIGHT - BOTTOM}" x2="{x:.1f}" '
                        f'y2="{HEIGHT - BOTTOM + 4}"/>')
            body.append(_text(x, HEIGHT - BOTTOM + 18, day.strftime("%m-%d"), "middle", "tick"))
        day += dt.timedelta(days=step)
    return body


def signals_floor(values: Sequence[float]) -> float:
    """The value axis' floor: the lowest value minus 0.05, down to a tenth, at most 0.8, at least 0."""
    low = min(values, default=1.0) - 0.05
    return max(0.0, min(0.8, math.floor(low * 10 + 1e-9) / 10))


def signals_svg(waves: Sequence[tuple[str, Sequence[SignalBar]]], signal_labels: Mapping[str, str],
                title: str) -> Markup:
    """Grouped bars: one group per wave, one bar per rate signal, threshold ticks on each bar."""
    names = list(dict.fromkeys(b.signal for _, bars in waves for b in bars))
    numbers = [v for _, bars in waves for b in bars for v in (b.value, b.pass_threshold, b.rollback_threshold)
               if v is not None]
    floor = signals_floor(numbers)
    body, _, _ = _y_axis(1.0, floor, ".1f", steps=round((1.0 - floor) * 10))
    plot_w, plot_h = WIDTH - LEFT - RIGHT, HEIGHT - TOP - BOTTOM
    group_w = plot_w / max(len(waves), 1)
    bar_w = min(22.0, (group_w - 12) / max(len(names), 1))

    def y_of(v: float) -> float:
        return HEIGHT - BOTTOM - plot_h * (max(v, floor) - floor) / (1.0 - floor)

    for g, (wave, bars) in enumerate(waves):
        gx = LEFT + g * group_w + (group_w - bar_w * len(names)) / 2
        for bar in bars:
            x = gx + names.index(bar.signal) * bar_w
            colour = SIGNAL_COLOURS[names.index(bar.signal) % len(SIGNAL_COLOURS)]
            if bar.value is None:
                body.append(_text(x + bar_w / 2, HEIGHT - BOTTOM - 4, "–", "middle", "tick"))
            else:
                y = y_of(bar.value)
                body.append(f'<rect class="bar" data-wave="{escape(wave)}" data-signal="{escape(bar.signal)}" '
                            f'data-value="{bar.value:.4f}" x="{x + 1:.1f}" y="{y:.1f}" width="{bar_w - 2:.1f}" '
                            f'height="{HEIGHT - BOTTOM - y:.1f}" fill="{colour}"/>')
            for cls, threshold in (("pass", bar.pass_threshold), ("rollback", bar.rollback_threshold)):
                ty = y_of(threshold)
                body.append(f'<line class="threshold {cls}" x1="{x:.1f}" y1="{ty:.1f}" x2="{x + bar_w:.1f}" '
                            f'y2="{ty:.1f}"/>')
        body.append(_text(LEFT + (g + 0.5) * group_w, HEIGHT - BOTTOM + 18, wave, "middle", "tick"))
    colours = [SIGNAL_COLOURS[i % len(SIGNAL_COLOURS)] for i in range(len(names))]
    body += _legend([(c, signal_labels.get(n, n)) for c, n in zip(colours, names)])
    return _frame("chart-signals", title, body)
