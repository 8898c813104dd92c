"""Where state lives by default, and how ``--state`` names a store. Constants only, so that the CLI can
show them in ``--help`` without loading a store."""

from __future__ import annotations

from pathlib import Path

DEFAULT_STATE = Path(".rollout/state.db")
STATE_HELP = "State store: sqlite:PATH (default) or dynamodb://TABLE?region=REGION."
