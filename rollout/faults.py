"""Fault switches for the crash and lease tests: the process stops itself at a named point.

``ROLLOUT_FAULT_KILL_AT=<point>:<n>`` sends this process SIGKILL the n-th time it reaches
``<point>``; ``ROLLOUT_FAULT_STOP_AT=<point>:<n>`` sends SIGSTOP (a driver paused past its lease).
Points: the driver's step boundaries ``before_intent``, ``after_intent``, ``after_backend``,
``after_done``, and ``after_call:<service>:<Operation>`` after each AWS call that succeeded
(``after_call:identitystore:CreateGroupMembership``). Never set them for a real rollout.
"""

from __future__ import annotations

import os
import signal
import threading
from dataclasses import dataclass


@dataclass
class _Armed:
    point: str
    left: int
    how: signal.Signals


class FaultSwitch:
    def __init__(self) -> None:
        self._armed: list[_Armed] = []
        for variable, how in (("ROLLOUT_FAULT_KILL_AT", signal.SIGKILL), ("ROLLOUT_FAULT_STOP_AT", signal.SIGSTOP)):
            point, _, count = os.environ.get(variable, "").rpartition(":")
            if point:
                self._armed.append(_Armed(point, int(count or 1), how))
        self._lock = threading.Lock()

    def __call__(self, point: str) -> None:
        if not self._armed:
            return
        with self._lock:
            for armed in self._armed:
                if armed.point == point:
                    armed.left -= 1
                    if armed.left == 0:
                        os.kill(os.getpid(), armed.how)
