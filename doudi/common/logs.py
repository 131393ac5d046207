"""Logging for every process: one line per record, identity numbers masked.

Masking happens in the formatter, on the finished line (message, arguments and
traceback alike), so no call site can forget it (PIPL; docs/domain.md section 2).
"""

from __future__ import annotations

import logging
import re
import sys

from doudi.core.identity import mask

# 18 characters that look like an identity number, not inside a longer run of
# digits or letters (a settlement id or a hash is left alone).
_IDENTITY_NUMBER = re.compile(r"(?<![0-9A-Za-z])[0-9]{17}[0-9Xx](?![0-9A-Za-z])")

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def mask_identity_numbers(text: str) -> str:
    """``text`` with every identity-number-shaped run masked as ``110105********002X``."""
    return _IDENTITY_NUMBER.sub(lambda match: mask(match.group(0)), text)


class MaskingFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        return mask_identity_numbers(super().format(record))


def configure_logging(level: str = "INFO") -> None:
    """Send every logger's records to stderr through the masking formatter."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter(FORMAT))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
