"""Find the ``templates/`` directory and render its text templates (Cedar, SSM documents, reports).

Rule: an installed wheel carries the templates as ``rollout/_templates`` (see pyproject's
force-include); a source checkout has them at the repository's ``templates/``. The installed copy
wins when both exist. Rendering is strict: an undefined variable is an error, never an empty string,
and nothing is HTML-escaped (these are policy and script texts, not web pages). HTML templates
(``*.html.j2``: the status report, e-mail notices) render through ``render_html`` instead, whose
environment escapes every value; only ``markupsafe.Markup`` (the report's inline SVG charts) passes as is.

One escaping helper per output format, for every value that comes from an inventory, a policy, a
triage title or a person:

- markdown: ``md_escape``, registered as the ``md`` filter; every markdown template under
  ``templates/reports/`` passes such values through it;
- HTML: jinja2's autoescape (``render_html``);
- terminal: ``terminal_safe``, for every command that prints recorded text.

And ``safe_url``: links that reach a reader (the help desk's FAQ) are ``https:`` or ``mailto:`` only.
"""

from __future__ import annotations

import re
import unicodedata
from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import jinja2

import rollout


def templates_dir() -> Path:
    """Return the templates directory: the installed ``rollout/_templates`` or the checkout's ``templates/``."""
    package_dir = Path(rollout.__file__).resolve().parent
    for candidate in (package_dir / "_templates", package_dir.parent / "templates"):
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError(
        f"no templates directory next to {package_dir}: reinstall zt-rollout or run from a source checkout."
    )


# Line breaks of every kind (a newline in a triage title must not start a forged "## heading").
_BREAKS = re.compile(r"\r\n|[\n\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
# C0 and C1 controls, DEL, and the bidirectional overrides and isolates that reorder what is shown.
_CONTROLS = re.compile(r"[\x00-\x08\x0e-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]")
_MD_PUNCT = re.compile(r"([\\`*_\[\]()!|~#{}^$])")
_MD_BLOCK_START = re.compile(r"^(\s*)([-+=>])|^(\s*\d+)([.)])")
_HTML = {"&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;"}
URL_SCHEMES = ("https", "mailto")


def md_escape(value: object) -> str:
    """``value`` as inert inline markdown text, safe in a paragraph, a list item and a table cell.

    Rule: line breaks become spaces and control characters go; ``& < > " '`` become HTML entities
    (no raw HTML, no ``</details>``, no ``<!--``); markdown punctuation (``\\ ` * _ [ ] ( ) ! | ~ #
    { } ^ $``) is backslash-escaped, so no link, image, emphasis, code span or extra table column; a
    leading list, quote or heading marker is escaped; ``://`` and ``www.`` get a backslash, so no
    autolink; ``@`` is followed by a zero-width space, so no ``@org/team`` mention and no e-mail link.
    Worked example: ``![x](http://h/p.png) @org/t`` ->
    ``\\!\\[x\\]\\(http\\://h/p.png\\) @&#8203;org/t``, which GitHub shows as the text it was.
    """
    text = _CONTROLS.sub("", _BREAKS.sub(" ", str(value)))
    text = "".join(_HTML.get(c, c) for c in text)
    text = _MD_PUNCT.sub(r"\\\1", text)
    text = _MD_BLOCK_START.sub(lambda m: f"{m[1]}\\{m[2]}" if m[2] else f"{m[3]}\\{m[4]}", text)
    text = text.replace("://", "\\://")
    text = re.sub(r"(?i)\b(www)\.", r"\1\\.", text)
    return text.replace("@", "@&#8203;")


def terminal_safe(value: object, *, one_line: bool = False) -> str:
    """``value`` without what a terminal would obey: ESC and every other C0/C1 control character (tab
    and newline kept, or newline made a space with ``one_line``), DEL, and bidirectional overrides.

    ``"ok\\x1b]0;pwned\\x07 done"`` -> ``"ok]0;pwned done"``.
    """
    text = str(value).replace("\r\n", "\n")
    if one_line:
        text = _BREAKS.sub(" ", text)
    return _CONTROLS.sub("", text.replace("\r", ""))


def url_problem(url: str) -> str:
    """Why ``url`` may not be a link shown to people ('' if it may): only ``https:`` and ``mailto:``."""
    text = unicodedata.normalize("NFKC", url).strip()
    if _CONTROLS.search(text) or any(c.isspace() for c in text):
        return "has spaces or control characters; write the address without them"
    scheme = urlsplit(text).scheme.lower() if ":" in text else ""
    if scheme not in URL_SCHEMES:
        return (f"scheme {scheme + ':' if scheme else '(none)'} is not allowed; use an https: or mailto: "
                "address")
    if scheme == "https" and not urlsplit(text).netloc:
        return "has no host; write it as https://host/path"
    return ""


def safe_url(url: str) -> str:
    """``url`` if it may be a link (``url_problem``); else ``ValueError`` naming why."""
    problem = url_problem(url)
    if problem:
        raise ValueError(f"{url!r}: {problem}")
    return url


@cache
def environment(escape_html: bool = False) -> jinja2.Environment:
    """The jinja2 environment: StrictUndefined, trailing newline kept; HTML-escaped with ``escape_html``."""
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=escape_html,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["md"] = md_escape
    env.filters["safe_url"] = safe_url
    return env


def render(name: str, **context: Any) -> str:
    """Render ``templates/<name>`` (e.g. ``cedar/site_group.cedar.j2``) with ``context``."""
    return environment().get_template(name).render(**context)


def html_environment() -> jinja2.Environment:
    """The environment for ``*.html.j2``: like ``environment()`` but every value is HTML-escaped."""
    return environment(escape_html=True)


def render_html(name: str, **context: Any) -> str:
    """Render the HTML template ``templates/<name>`` (must end in ``.html.j2``) with escaping on."""
    if not name.endswith(".html.j2"):
        raise ValueError(f"{name}: render_html is for .html.j2 templates; use render() for text")
    return html_environment().get_template(name).render(**context)
