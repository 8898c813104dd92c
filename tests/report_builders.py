"""Builders for the report, notice and CI-comment tests: a real rehearsal state, status documents
for the traffic-light rules, and headless Chromium driven over the DevTools protocol on a pipe.

``Chromium`` starts Debian's chromium (``make test`` installs it when missing) with
``--remote-debugging-pipe``: commands go in on fd 3 and replies come out on fd 4, NUL-separated
JSON, so no websocket library and no network port is needed.
"""

from __future__ import annotations

import base64
import copy
import datetime as dt
import json
import os
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml

from rollout.backends.simulator import load_scenario
from rollout.drive.rehearse import rehearse
from rollout.plan import api
from tests.rollout_builders import RehearsalFiles, write_rehearsal_files

BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable")
CHROMIUM_FLAGS = ("--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--remote-debugging-pipe")
REHEARSAL_START = dt.datetime(2027, 1, 12, 9, tzinfo=dt.UTC)


@dataclass(frozen=True)
class Rehearsed:
    files: RehearsalFiles
    state: Path


def rehearse_files(directory: Path, n: int = 600) -> Rehearsed:
    """A finished rehearsal of ``n`` generated devices (tests.rollout_builders.SCENARIO): the canary
    quarantines the dynabook cohort under a blocker, wave-3's sign-in outage rolls it back and halts."""
    files = write_rehearsal_files(directory, n=n)
    plan = json.loads(files.plan.read_text(encoding="utf-8"))
    inventory = api.load_inventory_for_plan(files.inventory, plan)
    state = directory / "state.db"
    rehearse(state, plan, inventory, load_scenario(files.scenario), start=REHEARSAL_START)
    return Rehearsed(files, state)


@pytest.fixture(scope="session")
def rehearsed(tmp_path_factory: pytest.TempPathFactory) -> Rehearsed:
    return rehearse_files(tmp_path_factory.mktemp("rehearsal"))


def status_doc(**changes: Any) -> dict[str, Any]:
    """A minimal zt-rollout/status/v1 document of a healthy running rollout, with top-level ``changes``."""
    doc: dict[str, Any] = {
        "schema": "zt-rollout/status/v1", "rollout": "zt-test", "phase": "running", "plan_hash": "0" * 64,
        "started_by": "starter", "started_at": "2027-01-12T09:00:00+00:00",
        "paused": {"paused": False, "reason": ""}, "halted": {"halted": False, "reason": ""},
        "devices": {"pending": 90, "verified": 10},
        "waves": [wave_doc("canary", "passed"), wave_doc("wave-1", "baking"), wave_doc("final", "planned")],
        "issues": [], "lease": None, "audit": {"events": 1, "head_hash": "0" * 64},
    }
    doc.update(copy.deepcopy(changes))
    return doc


def wave_doc(name: str, phase: str, verdict: str | None = None) -> dict[str, Any]:
    gate = None if verdict is None else {"wave": name, "at": "2027-01-13T09:00:00+00:00", "gate": {
        "verdict": verdict, "signals": [], "reported": 10, "expected": 10, "coverage": 1.0, "unknown": [],
        "stragglers": [], "failing_cohorts": [], "reasons": []}}
    return {"index": 0, "name": name, "canary": name == "canary", "phase": phase, "hash": "1" * 64,
            "phase_since": "2027-01-12T09:00:00+00:00", "devices": {}, "gate": gate,
            "approvals": {"required": ["pm"], "valid": [], "missing": ["pm"]}}


def issue_doc(id: int, severity: str | None, status: str = "open", holds: int = 0) -> dict[str, Any]:
    return {"id": id, "title": f"issue {id}", "selector": "model=X", "severity": severity, "status": status,
            "reported_during": "canary", "reported_by": "someone", "decided_by": None, "auto": False,
            "holds_devices": holds}


def find_browser() -> str:
    for name in ((os.environ.get("CHROMIUM") or "",) + BROWSERS):
        if name and shutil.which(name):
            return str(shutil.which(name))
    pytest.fail("no headless Chromium: `make test` installs Debian's chromium (or set CHROMIUM=/path/to/it)")


class Chromium:
    """One headless browser; ``open(path)`` loads a local file in a fresh tab of the given size."""

    def __init__(self, profile: Path) -> None:
        to_browser, self._out = os.pipe()
        self._in, from_browser = os.pipe()
        keep = (os.dup(to_browser), os.dup(from_browser))

        def wire() -> None:  # in the child: the protocol's fds 3 (commands) and 4 (replies)
            os.dup2(keep[0], 3)
            os.dup2(keep[1], 4)

        self.process = subprocess.Popen([find_browser(), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "about:blank"],
                                        preexec_fn=wire, pass_fds=(3, 4, *keep), stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL)
        for fd in (to_browser, from_browser, *keep):
            os.close(fd)
        self._buffer, self._id, self.session = b"", 0, ""

    def call(self, method: str, params: dict[str, Any] | None = None, *, timeout: float = 30) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params or {}}
        if self.session and not method.startswith(("Target.", "Browser.")):
            message["sessionId"] = self.session
        os.write(self._out, json.dumps(message).encode() + b"\0")
        deadline = time.monotonic() + timeout
        while True:
            while b"\0" not in self._buffer:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"{method}: no reply from Chromium in {timeout} s")
                chunk = os.read(self._in, 1 << 16)
                if not chunk:
                    raise RuntimeError(f"{method}: Chromium exited (code {self.process.poll()})")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply["result"]  # type: ignore[no-any-return]

    def open(self, path: Path, width: int = 1280, height: int = 900) -> None:
        target = self.call("Target.createTarget", {"url": "about:blank"})["targetId"]
        self.session = self.call("Target.attachToTarget", {"targetId": target, "flatten": True})["sessionId"]
        self.call("Emulation.setDeviceMetricsOverride", {"width": width, "height": height, "deviceScaleFactor": 1,
                                                         "mobile": False})
        self.call("Page.navigate", {"url": path.resolve().as_uri()})
        deadline = time.monotonic() + 30
        while self.evaluate("document.readyState") != "complete":
            if time.monotonic() > deadline:
                raise TimeoutError(f"{path} did not finish loading")
            time.sleep(0.05)

    def evaluate(self, expression: str) -> Any:
        result = self.call("Runtime.evaluate", {"expression": expression, "returnByValue": True})
        if "exceptionDetails" in result:
            raise AssertionError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def screenshot(self, path: Path) -> Path:
        """The whole page (beyond the viewport) as PNG."""
        shot = self.call("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True})
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def close(self) -> None:
        try:
            self.call("Browser.close", timeout=10)
        except (RuntimeError, TimeoutError, OSError):
            pass
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        for fd in (self._out, self._in):
            try:
                os.close(fd)
            except OSError:
                pass


@pytest.fixture(scope="module")
def chromium() -> Iterator[Chromium]:
    profile = Path(tempfile.mkdtemp(prefix="zt-chromium-"))
    browser = Chromium(profile)
    try:
        yield browser
    finally:
        browser.close()
        shutil.rmtree(profile, ignore_errors=True)


def write_yaml(path: Path, data: Any) -> Path:
    path.write_text(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8")
    return path
