"""Logging for ``rollout --debug``: the project's own debug lines on stderr, never a secret.

- The ``rollout`` loggers go to stderr (DEBUG with ``--debug``, else WARNING); botocore, boto3 and
  urllib3 stay at WARNING, because their debug output holds signed headers, request bodies (SSM
  command parameters) and credentials.
- Defence in depth: every line passes ``Redact``, which blanks ``Authorization:`` headers,
  security tokens, secret keys, access key ids and SSM ``Parameters`` if anything ever logs them.
"""

from __future__ import annotations

import logging
import re
import sys

PATTERNS = (
    (re.compile(r"(?i)(authorization\s*[:=]\s*)[^\n,}]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(x-amz-security-token\s*[:=]\s*)[^\s,}]+"), r"\1[redacted]"),
    (re.compile(r"(?i)((?:aws_)?secret_?access_?key['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1[redacted]"),
    (re.compile(r"(?i)(session_?token['\"]?\s*[:=]\s*['\"]?)[^\s'\",}]+"), r"\1[redacted]"),
    (re.compile(r"\b(AKIA|ASIA)[A-Z0-9]{16}\b"), "[redacted access key]"),
    (re.compile(r"(['\"]?Parameters['\"]?\s*[:=]\s*)\{[^}]*\}+"), r"\1{[redacted]}"),
)


def redact(text: str) -> str:
    for pattern, replacement in PATTERNS:
        text = pattern.sub(replacement, text)
    return text


class Redact(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.msg, record.args = redact(record.getMessage()), None
        return True


def configure(debug: bool) -> None:
    """Set up the ``rollout`` loggers once per process."""
    logger = logging.getLogger("rollout")
    if not any(getattr(h, "_zt_rollout", False) for h in logger.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
        handler.addFilter(Redact())
        handler._zt_rollout = True  # type: ignore[attr-defined]
        logger.addHandler(handler)
        logger.propagate = False
    logger.setLevel(logging.DEBUG if debug else logging.WARNING)
    for noisy in ("botocore", "boto3", "urllib3", "s3transfer", "werkzeug"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
