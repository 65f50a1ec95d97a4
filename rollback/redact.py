"""Secrets never reach a log line, at any level.

`--debug` turns on botocore's wire log, which prints request parameters and
bodies: an RDS restore's `MasterUserPassword`, a session token, a database
URL with its password. `install_redaction()` puts one filter on every handler
of the root logger, so whatever logger a record comes from (ours, botocore's,
urllib3's), its formatted message is masked before any handler writes it.
"""

from __future__ import annotations

import logging
import re

MASK = "***"

# A key that names a secret, then `=` or `:` (query strings, headers, dict and
# JSON reprs), then the value: quoted (kept quoted) or bare up to a separator.
_KEYED = re.compile(
    r"""(?ix)
    (?P<key>[\w.-]*(?:password|passphrase|secret|token|authorization|credential)[\w.-]*)
    (?P<sep>['"]?\s*[:=]\s*b?)
    (?P<value>'[^']*'|"[^"]*"|[^&\s,;}'"\]]+)
    """
)
# user:password@host in any URL (database URLs, proxies).
_URL_PASSWORD = re.compile(r"(?P<head>\b[a-z][a-z0-9+.-]*://[^:/\s@'\"]+:)[^@\s'\"]+(?=@)", re.I)


def redact(text: str) -> str:
    """`text` with every secret-looking value replaced by ***."""
    text = _URL_PASSWORD.sub(lambda m: m["head"] + MASK, text)

    def keyed(m: re.Match[str]) -> str:
        value = m["value"]
        quote = value[0] if value[:1] in ("'", '"') else ""
        return f"{m['key']}{m['sep']}{quote}{MASK}{quote}"

    return _KEYED.sub(keyed, text)


class RedactingFilter(logging.Filter):
    """Masks the formatted message (and its arguments) of every record it sees."""

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            message = record.getMessage()
        except (TypeError, ValueError):  # a malformed record is logging's to report
            return True
        cleaned = redact(message)
        if cleaned != message or record.args:
            record.msg, record.args = cleaned, None
        return True


_FILTER = RedactingFilter()


def install_redaction(logger: logging.Logger | None = None) -> None:
    """Put the one redacting filter on every handler of `logger` (default: the root). Idempotent."""
    for handler in (logger or logging.getLogger()).handlers:
        if _FILTER not in handler.filters:
            handler.addFilter(_FILTER)
