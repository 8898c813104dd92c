"""Find the ``templates/`` directory and render its text templates (Cedar, SSM documents, reports).

Rule: an installed wheel carries the templates as ``rollout/_templates`` (see pyproject's
force-include); a source checkout has them at the repository's ``templates/``. The installed copy
wins when both exist. Rendering is strict: an undefined variable is an error, never an empty string,
and nothing is HTML-escaped (these are policy and script texts, not web pages). HTML templates
(``*.html.j2``: the status report, e-mail notices) render through ``render_html`` instead, whose
environment escapes every value; only ``markupsafe.Markup`` (the report's inline SVG charts) passes as is.
"""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any

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


@cache
def environment(escape_html: bool = False) -> jinja2.Environment:
    """The jinja2 environment: StrictUndefined, trailing newline kept; HTML-escaped with ``escape_html``."""
    return jinja2.Environment(
        loader=jinja2.FileSystemLoader(str(templates_dir())),
        undefined=jinja2.StrictUndefined,
        autoescape=escape_html,
        keep_trailing_newline=True,
        trim_blocks=True,
        lstrip_blocks=True,
    )


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
