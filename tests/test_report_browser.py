"""What a person sees: the report of a real rehearsal opened in headless Chromium.

The page is loaded from a file (as a mailed or archived copy would be); the checks run in the
browser: the traffic light is laid out and painted in its colour, every device count shows the
state's figure, both charts are drawn with their series and bars, nothing was fetched from the
network. A full-page screenshot is saved under the test's tmp_path and must show the light's
colour and the chart lines' colours: proof that the page rendered, not just parsed.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from rollout.reports.charts import SERIES_COLOURS
from rollout.reports.light import assess_light
from rollout.reports.report import make_report
from rollout.reports.status import status_json
from rollout.reports.text import labels
from rollout.store.sqlite import SqliteStore
from tests.report_builders import Chromium, Rehearsed, chromium, rehearsed

__all__ = ["chromium", "rehearsed"]  # fixtures, imported for pytest

LIGHT_RGB = {"red": (0xC6, 0x28, 0x28), "yellow": (0xF9, 0xA8, 0x25), "green": (0x2E, 0x7D, 0x32)}

PAGE_FACTS = """JSON.stringify({
  light: document.getElementById('traffic-light').dataset.light,
  lightText: document.getElementById('traffic-light').textContent.trim(),
  lightColour: getComputedStyle(document.getElementById('traffic-light')).backgroundColor,
  lightBox: (b => [b.width, b.height, b.top])(document.getElementById('traffic-light').getBoundingClientRect()),
  reasons: [...document.querySelectorAll('#reasons li')].map(li => [li.dataset.light, li.textContent.trim()]),
  totals: Object.fromEntries([...document.querySelectorAll('#totals .n')].map(e => [e.dataset.phase, e.textContent])),
  waves: [...document.querySelectorAll('#waves tbody tr')].map(r => r.dataset.wave),
  series: [...document.querySelectorAll('#chart-timeline polyline.series')].map(p =>
    [p.dataset.series, p.dataset.last, p.getBBox().width > 100, p.points.numberOfItems]),
  bars: [...document.querySelectorAll('#chart-signals rect.bar')].map(r =>
    [r.dataset.wave, r.dataset.signal, Number(r.dataset.value), r.getBBox().height > 0]),
  charts: [...document.querySelectorAll('svg.chart')].map(s => [s.id, s.getBoundingClientRect().width > 300]),
  resources: performance.getEntriesByType('resource').map(e => e.name),
  title: document.title,
})"""


def hex_rgb(colour: str) -> tuple[int, int, int]:
    return int(colour[1:3], 16), int(colour[3:5], 16), int(colour[5:7], 16)


def pixels_near(image: Image.Image, rgb: tuple[int, int, int], tolerance: int = 12) -> int:
    """How many pixels of ``image`` are within ``tolerance`` of ``rgb`` on every channel."""
    pixels = np.asarray(image.convert("RGB"), dtype=np.int16)
    return int(np.all(np.abs(pixels - np.array(rgb, dtype=np.int16)) <= tolerance, axis=2).sum())


@pytest.mark.parametrize("lang", ["en", "ja"])
def test_report_in_headless_chromium(rehearsed: Rehearsed, chromium: Chromium, tmp_path: Path, lang: str) -> None:
    store = SqliteStore(rehearsed.state)
    rid = store.rollout_ids()[0]
    status = status_json(store, rid)
    expected = assess_light(status)
    page = tmp_path / f"report-{lang}.html"
    page.write_text(make_report(store, rid, lang=lang), encoding="utf-8")

    chromium.open(page)
    facts = json.loads(chromium.evaluate(PAGE_FACTS))

    assert facts["light"] == expected.light.value == "red"
    assert facts["lightText"] == labels(lang)["light"]["red"]
    assert facts["lightColour"] == "rgb({}, {}, {})".format(*LIGHT_RGB["red"])
    assert facts["lightBox"][0] >= 90 and facts["lightBox"][1] >= 90 and facts["lightBox"][2] < 100
    assert [light for light, _ in facts["reasons"]] == [r.light.value for r in expected.reasons]
    assert facts["totals"] == {"total": f"{sum(status['devices'].values()):,}",
                               **{p: f"{n:,}" for p, n in status["devices"].items()}}
    assert facts["waves"] == [w["name"] for w in status["waves"]]
    devices = status["devices"]
    on_zt = str(devices.get("migrated", 0) + devices.get("verified", 0) + devices.get("deferred", 0))
    assert [(s[0], s[1], s[2]) for s in facts["series"]] == [
        ("on_zero_trust", on_zt, True), ("verified", str(devices.get("verified", 0)), True),
        ("reverted", str(devices.get("reverted", 0)), True)]
    assert all(s[3] > 4 for s in facts["series"])
    gated = {w["name"]: {s["name"]: s["value"] for s in w["gate"]["gate"]["signals"]}
             for w in status["waves"] if w["gate"]}
    assert {(w, s) for w, s, _, _ in facts["bars"]} == {
        (w, s) for w, signals in gated.items() for s, v in signals.items() if s != "tickets_per_100" and v is not None}
    assert all(abs(value - gated[w][s]) < 1e-4 and drawn for w, s, value, drawn in facts["bars"])
    assert facts["charts"] == [["chart-timeline", True], ["chart-signals", True]]
    assert facts["resources"] == []
    assert facts["title"].startswith(labels(lang)["title"])

    shot = Image.open(chromium.screenshot(tmp_path / f"report-{lang}.png"))
    assert shot.width == 1280 and shot.height > 2000
    assert len(shot.convert("RGB").getcolors(1 << 20) or []) > 50, "the screenshot is (nearly) blank"
    assert pixels_near(shot, LIGHT_RGB["red"]) > 5000, "the red traffic light is not painted"
    for series in ("on_zero_trust", "verified"):
        assert pixels_near(shot, hex_rgb(SERIES_COLOURS[series])) > 200, f"the {series} line is not drawn"
