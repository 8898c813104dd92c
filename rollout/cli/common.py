"""What the rollout commands share: the store, the rollout, who acts, the clock, the console.

``--state sqlite:PATH`` (or a plain path) or ``--state dynamodb://TABLE?region=R`` (``ROLLOUT_STATE``)
picks the state store, default ``sqlite:.rollout/state.db``. ``--rollout ID`` picks the rollout
when the store holds several. ``--as NAME`` (``ROLLOUT_ACTOR``) is who acts.

Light on purpose: every command module imports this one and click only at module level, and the
library it needs inside the command, so ``rollout --help`` and ``rollout status`` start fast.
"""

from __future__ import annotations

import datetime as dt
import getpass
import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import click

from rollout.errors import InputError
from rollout.store.locations import DEFAULT_STATE, STATE_HELP

if TYPE_CHECKING:
    from rich.console import Console

    from rollout.store.api import StateStore


def now_utc() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def open_store(state: str, *, create: bool = False) -> StateStore:
    """The store of ``--state``; a SQLite file is created only by a command that passes ``create``
    (``rollout start``): a mistyped path for any other command is an error, not a new empty file."""
    from rollout.store.factory import open_store as open_

    return open_(state, create=create)


def stdout() -> Console:
    from rich.console import Console

    return Console(soft_wrap=True, width=200 if not sys.stdout.isatty() else None)


def note(message: str) -> None:
    click.echo(message, err=True)


def pick_rollout(store: StateStore, rollout: str | None) -> str:
    if rollout:
        store.status(rollout)
        return rollout
    ids = store.rollout_ids()
    if len(ids) == 1:
        return ids[0]
    if not ids:
        raise InputError(f"{store.location} holds no rollout; start one with `rollout start --plan plan.json`.")
    raise InputError(f"{store.location} holds several rollouts ({', '.join(ids)}); pass --rollout ID.")


def state_option(f: Any) -> Any:
    return click.option("--state", default=f"sqlite:{DEFAULT_STATE}", envvar="ROLLOUT_STATE", show_default=True,
                        help=STATE_HELP)(f)


def rollout_option(f: Any) -> Any:
    return click.option("--rollout", "rollout_id", envvar="ROLLOUT_ID", help="Rollout id (default: the only one).")(f)


def actor_option(required: bool) -> Callable[[Any], Any]:
    def wrap(f: Any) -> Any:
        return click.option("--as", "actor", envvar="ROLLOUT_ACTOR", required=required,
                            default=None if required else getpass.getuser(),
                            help="Who acts (recorded in the audit log).")(f)
    return wrap
