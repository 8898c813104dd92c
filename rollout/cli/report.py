"""The commands for people who do not run the CLI: ``report`` (status as HTML or markdown),
``ci-comment`` (a pull request's plan diff as a sticky comment) and ``notices`` (employees' wave
notices, optionally sent through Amazon SES). Each parses, calls the library, prints.

``--lang`` can also come from ``ROLLOUT_LANG`` and ``--policy`` from ``ROLLOUT_POLICY``; a flag wins.
"""

from __future__ import annotations

from pathlib import Path

import click

from rollout.cli.common import open_store, pick_rollout, rollout_option, state_option
from rollout.reports.text import FORMATS, LANGS


def _write(out: Path | None, text: str, what: str) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    from rollout.files import write_bytes_atomic

    data = text.encode("utf-8")
    write_bytes_atomic(out, data)
    click.echo(f"Wrote {out} ({what}, {len(data):,} bytes).", err=True)


@click.command()
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the report here (default: stdout).")
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True, envvar="ROLLOUT_LANG",
              help="Language of the labels.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: one self-contained page; markdown: for chat and e-mail.")
@state_option
@rollout_option
def report(out: Path | None, lang: str, fmt: str, state: str, rollout_id: str | None) -> None:
    """The rollout at a glance: traffic light and why, waves, gates, approvals, issues, charts, breakdowns."""
    from rollout.reports.report import make_report


    store = open_store(state)
    text = make_report(store, pick_rollout(store, rollout_id), lang=lang, fmt=fmt)
    _write(out, text, f"{fmt} report, {lang}")


@click.command("ci-comment")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(dir_okay=False, path_type=Path), help="Write the comment here (default: stdout).")
def ci_comment(old: Path, new: Path, out: Path | None) -> None:
    """The pull request's sticky comment: what plan NEW changes from plan OLD (markdown with a marker)."""
    from rollout.plan import api
    from rollout.reports.ci_comment import ci_comment_markdown


    _write(out, ci_comment_markdown(api.diff(old, new)), "plan-diff comment")


@click.command()
@click.argument("wave")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the notices and notices.json.")
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), envvar="ROLLOUT_POLICY",
              help="Rollout policy: its helpdesk.contact and helpdesk.faq_url go into every notice.")
@click.option("--send", is_flag=True, help="Also send each notice to its user through Amazon SES.")
@click.option("--from", "sender", help="Sender address (a verified SES identity); needed with --send.")
@state_option
@rollout_option
def notices(wave: str, out_dir: Path, policy: Path | None, send: bool, sender: str | None, state: str,
            rollout_id: str | None) -> None:
    """One notice per employee of WAVE, in Japanese and English: when, what changes, whom to call."""
    from rollout.reports.notices import deliver, make_notices, write_notices


    if send and not sender:
        raise click.UsageError("--send needs --from ADDRESS: the verified SES identity notices come from.")
    store = open_store(state)
    batch = make_notices(store, pick_rollout(store, rollout_id), wave, policy)
    devices = sum(len(n.devices) for n in batch.notices)
    held = (f"; {len(batch.skipped):,} of its devices do not move with it (held, rolled back or excluded) "
            "and get none" if batch.skipped else "")
    if not send:
        path = write_notices(batch, out_dir)
        click.echo(f"Wrote {len(batch.notices):,} notices for wave {batch.wave} ({devices:,} devices) to {out_dir}"
                   f"{held}; see {path}.")
        return
    assert sender is not None
    done = deliver(store, batch, out_dir, sender)
    again = f" ({done.sent_before:,} sent earlier, not again)" if done.sent_before else ""
    click.echo(f"Sent {done.sent_now:,} notices for wave {batch.wave} ({devices:,} devices) from {sender} through "
               f"Amazon SES{again}{held}; see {done.manifest}.")


COMMANDS = (report, ci_comment, notices)
