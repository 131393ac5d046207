"""Logging for every process: one line per record, identity numbers masked.

Every record, from ``logging.getLogger(...)`` (ours, uvicorn's, grpc's, alembic's) or
from a structlog logger, goes through one handler and one renderer (structlog's
``ProcessorFormatter``), in one of two formats (``DOUDI_LOG_FORMAT``):

* ``json``: one JSON object a line, ``timestamp`` (UTC, ISO 8601), ``level``,
  ``logger``, ``event`` (the message), ``request_id`` while a request or call is
  served (doudi.common.request_ids), ``trace_id`` and ``span_id`` while a span is
  recorded (doudi.common.tracing), a record's ``extra`` fields, and ``exception`` (the
  traceback). The default with ``DOUDI_ENVIRONMENT=production``.
* ``text``: ``timestamp LEVEL logger message key=value...``, the traceback on the lines
  after; the default otherwise.

Masking happens on the finished record, so no call site can forget it (PIPL;
docs/domain.md section 2): every text value of the record first (a JSON escape could
otherwise put a digit next to a number), then the rendered line (message, arguments,
keys and traceback alike).
"""

from __future__ import annotations

import logging
import re
import sys
from typing import Any, Final, Literal

import orjson
import structlog
from opentelemetry import trace
from structlog.stdlib import ProcessorFormatter
from structlog.typing import EventDict, Processor, WrappedLogger

from doudi.core.identity import mask, resident_id_number

LogFormat = Literal["text", "json"]

# 18 characters shaped as an identity number, not inside a longer run of digits, whatever
# else stands next to them (a visit id ``ZY`` + the number, a path segment, ``id=``).
_IDENTITY_NUMBER_SHAPE = re.compile(r"(?<![0-9])[0-9]{17}[0-9Xx](?![0-9])")

# The fields every line has, in this order; the others follow as they come.
_HEAD: Final = ("timestamp", "level", "logger", "event")
# Fields the processors themselves write, which hold no identity number.
_PLAIN: Final = frozenset({"timestamp", "level", "logger", "trace_id", "span_id"})


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


# --- processors -------------------------------------------------------------------------


def _trace_ids(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """The current span's trace and span ids, while a span is being recorded (never
    without a tracer configured: doudi.common.tracing)."""
    context = trace.get_current_span().get_span_context()
    if context.is_valid:
        event_dict.setdefault("trace_id", format(context.trace_id, "032x"))
        event_dict.setdefault("span_id", format(context.span_id, "016x"))
    return event_dict


def _mask_values(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> EventDict:
    """Every text value masked before it is rendered (and so before JSON escapes it), and
    every whole number that reads as an identity number, as its masked text."""
    for key, value in event_dict.items():
        if isinstance(value, str):
            if key not in _PLAIN:
                event_dict[key] = mask_identity_numbers(value)
        elif type(value) is int:
            text = str(value)
            masked = mask_identity_numbers(text)
            if masked != text:
                event_dict[key] = masked
    return event_dict


def _render_json(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> str:
    """One JSON object, its line masked. Where the masking of the line finds what the
    values' did not (a key, a number inside a list), the line is written again with every
    key and value as masked text, so that it still parses."""
    ordered = {key: event_dict.pop(key) for key in _HEAD if key in event_dict}
    ordered.update(event_dict)
    # orjson writes text as it is (no \u escapes of Chinese); anything it cannot write
    # (an exception given as a field, a path) as str().
    line = orjson.dumps(ordered, default=str).decode()
    if mask_identity_numbers(line) == line:
        return line
    return orjson.dumps(
        {
            mask_identity_numbers(str(key)): mask_identity_numbers(
                value if isinstance(value, str) else orjson.dumps(value, default=str).decode()
            )
            for key, value in ordered.items()
        }
    ).decode()


def _render_text(_logger: WrappedLogger, _name: str, event_dict: EventDict) -> str:
    timestamp = event_dict.pop("timestamp", "")
    level = str(event_dict.pop("level", "")).upper()
    logger = event_dict.pop("logger", "")
    exception = event_dict.pop("exception", None)
    parts = [f"{timestamp} {level} {logger} {event_dict.pop('event', '')}"]
    parts.extend(f"{key}={_text_value(value)}" for key, value in event_dict.items())
    line = " ".join(parts)
    return line if exception is None else f"{line}\n{exception}"


def _text_value(value: Any) -> str:
    text = str(value)
    return text if text and " " not in text and '"' not in text else orjson.dumps(text).decode()


def _mask_line(_logger: WrappedLogger, _name: str, line: EventDict | str) -> str:
    """The rendered line, masked: what a value's masking could not see (a key, a number
    given as an int, a traceback's frames)."""
    return mask_identity_numbers(str(line))


def _shared_processors() -> list[Processor]:
    """What every record gets, from a structlog logger or from the standard library."""
    return [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        _trace_ids,
    ]


def formatter(log_format: LogFormat) -> logging.Formatter:
    """The one formatter of every handler: records rendered as ``log_format`` says, then
    masked."""
    render: list[Any] = [_render_json] if log_format == "json" else [_render_text, _mask_line]
    processors: list[Any] = [
        ProcessorFormatter.remove_processors_meta,
        structlog.processors.format_exc_info,
        _mask_values,
        *render,
    ]
    return ProcessorFormatter(
        processors=processors,
        # The standard library's records: the same fields, and what they carry as extra=.
        foreign_pre_chain=[*_shared_processors(), structlog.stdlib.ExtraAdder()],
    )


def configure_logging(level: str = "INFO", log_format: LogFormat = "text") -> None:
    """Send every logger's records, the standard library's and structlog's, to stderr
    through :func:`formatter`."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(formatter(log_format))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    # Python's warnings too, as records of the logger ``py.warnings``: one format.
    logging.captureWarnings(True)
    structlog.configure(
        processors=[
            structlog.stdlib.filter_by_level,
            *_shared_processors(),
            ProcessorFormatter.wrap_for_formatter,
        ],
        # The standard library's own loggers: structlog's LoggerFactory would make every
        # logger created after it look for its caller's frame at each record (a quarter
        # of a record's time), for a line number no line shows.
        logger_factory=logging.getLogger,
        wrapper_class=structlog.stdlib.BoundLogger,
        cache_logger_on_first_use=True,
    )
