"""Defence in depth for logs: no log line carries a secret, whoever logged it.

The sensor's own code never logs bodies or credentials above DEBUG, but a URL
with `?key=`, a library's debug line with an `Authorization` header, or an
exception message quoting a header line would still reach the terminal or a log
file. `RedactingFilter` masks secrets and personal data in every record (message,
arguments, exception text, stack) before any handler formats it; `setup_logging`
installs it on the root handlers, so records from every logger pass through it.

Placeholders are the same as in events (`[OPENAI_KEY:2944ae73]`), so a masked key in
a log line can be matched to `auth.key_hash` in the events. The machine's hash key
is read only when a record actually contains something to mask.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from oisp_sensor.privacy.detectors import Finding, Scanner
from oisp_sensor.privacy.hashing import KeyedHasher

_FAILED = "[log message removed: it could not be checked for secrets]"


class RedactingFilter(logging.Filter):
    """Rewrites each record with secrets and personal data masked; never drops one."""

    def __init__(
        self,
        scanner: Scanner | None = None,
        hasher: Callable[[], KeyedHasher] = KeyedHasher.from_file,
    ) -> None:
        super().__init__()
        self.scanner = scanner or Scanner()
        self._load_hasher = hasher
        self._hasher: KeyedHasher | None = None
        self._formatter = logging.Formatter()

    def _placeholder(self, finding: Finding) -> str:
        if self._hasher is None:
            try:
                self._hasher = self._load_hasher()
            except (OSError, ValueError):
                return f"[{finding.label}]"
        return f"[{finding.label}:{self._hasher.digest(finding.value)[:8]}]"

    def clean(self, text: str) -> str:
        return self.scanner.redact(text, self._placeholder)[0]

    def filter(self, record: logging.LogRecord) -> bool:
        try:
            record.msg = self.clean(record.getMessage())
            record.args = None
            if record.exc_info and not record.exc_text:
                record.exc_text = self._formatter.formatException(record.exc_info)
            if record.exc_text:
                record.exc_text = self.clean(record.exc_text)
            if record.stack_info:
                record.stack_info = self.clean(record.stack_info)
        except Exception:  # noqa: BLE001 - a log line must never be the way a secret escapes
            record.msg, record.args = _FAILED, None
            record.exc_info = record.exc_text = record.stack_info = None
        return True


def install_log_redaction(logger: logging.Logger | None = None) -> RedactingFilter:
    """Put one RedactingFilter on every handler of `logger` (the root logger by default).

    Handler filters see records propagated from every logger below, which a
    logger's own filters do not. Installing twice adds nothing.
    """
    logger = logger or logging.getLogger()
    existing = next(
        (f for h in logger.handlers for f in h.filters if isinstance(f, RedactingFilter)),
        None,
    )
    shared = existing or RedactingFilter()
    for handler in logger.handlers:
        if not any(isinstance(f, RedactingFilter) for f in handler.filters):
            handler.addFilter(shared)
    return shared
