"""Logging for every process: one line per record, identity numbers masked.

Masking happens in the formatter, on the finished line (message, arguments and
traceback alike), so no call site can forget it (PIPL; docs/domain.md section 2).
"""

from __future__ import annotations

import logging
import re
import sys

from doudi.core.identity import mask, resident_id_number

# 18 characters shaped as an identity number, not inside a longer run of digits, whatever
# else stands next to them (a visit id ``ZY`` + the number, a path segment, ``id=``).
_IDENTITY_NUMBER_SHAPE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")

FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"


def mask_identity_numbers(text: str) -> str:
    """``text`` with every identity number masked as ``110105********002X``: each run of that
    shape that is a plausible number (province prefix, birth date, check digit, as
    :func:`doudi.core.identity.resident_id_number` checks). Anything else of that shape, an
    18-digit amount or request id, is left as it is."""
    return _IDENTITY_NUMBER_SHAPE.sub(_mask_if_valid, text)


def _mask_if_valid(match: re.Match[str]) -> str:
    run = match.group(0)
    try:
        resident_id_number(run)
    except ValueError:
        return run
    return mask(run)


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
