"""Strings an inventory, a policy, a triage title or a person may hold that try to make an output
do something: markdown that links, images, mentions, headings, extra table columns; HTML; terminal
escape sequences; line breaks that forge lines. ``tests/test_outputs.py`` passes each through the
escaper of every output format and through the CLI."""

from __future__ import annotations

HOSTILE: tuple[str, ...] = (
    "![x](http://beacon.example/p.png)",
    "[click here](javascript:alert(1))",
    "<img src=x onerror=alert(1)>",
    "</details><details open><summary>forged</summary>",
    "<!-- hide the rest",
    "@org/security-team please approve",
    "cc @rehearsal-pm",
    "a | b | c",
    "title\n## approved by rehearsal-pm",
    "title\r\n- [x] approved",
    "line\u2028## heading after a Unicode line separator",
    "# heading at the start",
    "- a list item",
    "1. a numbered item",
    "> a quote",
    "`code` and ``more``",
    "**bold** _em_ ~~gone~~",
    "http://beacon.example/track?u=1",
    "www.beacon.example",
    "mail me: rehearsal-person@example.co.jp",
    "\\| escaped pipe already",
    "&lt;not-a-tag&gt; &amp;",
    "[ref]: http://beacon.example",
    "\x1b[31mred\x1b[0m and \x1b]0;window title\x07",
    "bell\x07 backspace\x08 nul\x00 c1\x9b31m",
    "\u202eevil-reversed",
    "#123 looks like an issue",
)
