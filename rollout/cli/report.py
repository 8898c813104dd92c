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


FORCE_HELP = "Replace an existing --out file (never the state, an input or a device)."


def _write(out: Path | None, text: str, what: str, inputs: tuple[Path, ...], force: bool) -> None:
    if out is None:
        click.echo(text, nl=False)
        return
    from rollout.files import write_output

    data = text.encode("utf-8")
    write_output(out, data, inputs=inputs, force=force)
    click.echo(f"Wrote {out} ({what}, {len(data):,} bytes, readable by you only).", err=True)


@click.command()
@click.option("--out", type=click.Path(path_type=Path), help="Write the report here (default: stdout).")
@click.option("--force", is_flag=True, help=FORCE_HELP)
@click.option("--lang", type=click.Choice(LANGS), default="en", show_default=True, envvar="ROLLOUT_LANG",
              help="Language of the labels.")
@click.option("--format", "fmt", type=click.Choice(FORMATS), default="html", show_default=True,
              help="html: one self-contained page; markdown: for chat and e-mail.")
@state_option
@rollout_option
def report(out: Path | None, force: bool, lang: str, fmt: str, state: str, rollout_id: str | None) -> None:
    """The rollout at a glance: traffic light and why, waves, gates, approvals, issues, charts, breakdowns."""
    from rollout.files import check_output, state_files
    from rollout.reports.report import make_report

    if out is not None:
        check_output(out, inputs=state_files(state), force=force)
    store = open_store(state)
    text = make_report(store, pick_rollout(store, rollout_id), lang=lang, fmt=fmt)
    _write(out, text, f"{fmt} report, {lang}", state_files(state), force)


@click.command("ci-comment")
@click.argument("old", type=click.Path(dir_okay=False, path_type=Path))
@click.argument("new", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--out", type=click.Path(path_type=Path), help="Write the comment here (default: stdout).")
@click.option("--force", is_flag=True, help=FORCE_HELP)
def ci_comment(old: Path, new: Path, out: Path | None, force: bool) -> None:
    """The pull request's sticky comment: what plan NEW changes from plan OLD (markdown with a marker)."""
    from rollout.files import check_output
    from rollout.plan import api
    from rollout.reports.ci_comment import ci_comment_markdown

    if out is not None:
        check_output(out, inputs=(old, new), force=force)
    _write(out, ci_comment_markdown(api.diff(old, new)), "plan-diff comment", (old, new), force)


@click.command()
@click.argument("wave")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), required=True,
              help="Folder for the notices and notices.json (files readable by you only).")
@click.option("--force", is_flag=True, help="Replace files in --out that are not this wave's notices "
              "(never the state or the policy).")
@click.option("--policy", type=click.Path(dir_okay=False, path_type=Path), envvar="ROLLOUT_POLICY",
              help="Rollout policy: its helpdesk.contact and helpdesk.faq_url go into every notice.")
@click.option("--send", is_flag=True, help="Also send each notice to its user through Amazon SES.")
@click.option("--from", "sender", help="Sender address (a verified SES identity); needed with --send.")
@state_option
@rollout_option
def notices(wave: str, out_dir: Path, force: bool, policy: Path | None, send: bool, sender: str | None, state: str,
            rollout_id: str | None) -> None:
    """One notice per employee of WAVE, in Japanese and English: when, what changes, whom to call.

    Each person gets one notice per wave, whatever the folder or the run: what was sent is recorded
    in the state store."""
    from rollout.files import state_files
    from rollout.reports.notices import deliver, make_notices, sent_of, sent_pairs, write_notices


    if send and not sender:
        raise click.UsageError("--send needs --from ADDRESS: the verified SES identity notices come from.")
    store = open_store(state)
    batch = make_notices(store, pick_rollout(store, rollout_id), wave, policy)
    inputs = state_files(state) + ((policy,) if policy else ())
    devices = sum(len(n.devices) for n in batch.notices)
    held = (f"; {len(batch.skipped):,} of its devices do not move with it (held, rolled back or excluded) "
            "and get none" if batch.skipped else "")
    if not send:
        path = write_notices(batch, out_dir, sent_pairs(batch, sent_of(store, batch)), inputs=inputs, force=force)
        click.echo(f"Wrote {len(batch.notices):,} notices for wave {batch.wave} ({devices:,} devices) to {out_dir}"
                   f"{held}; see {path}.")
        return
    assert sender is not None
    done = deliver(store, batch, out_dir, sender, inputs=inputs, force=force)
    again = f" ({done.sent_before:,} sent earlier, not again)" if done.sent_before else ""
    click.echo(f"Sent {done.sent_now:,} notices for wave {batch.wave} ({devices:,} devices) from {sender} through "
               f"Amazon SES{again}{held}; see {done.manifest}.")


COMMANDS = (report, ci_comment, notices)
