"""The end of a ``SubmitRoster`` stream: how many rows were sent and their digest.

The client counts and digests the rows as it sends them and puts the result in the
stream's last message (``RosterEnd``); the hub does the same with the rows it received
and records the roster only when both agree. A stream that ends any other way (cut,
cancelled, a message lost, an old client that sends no end) stores nothing. The
digest is SHA-256 of each row's fields in field-number order, separated by U+001F,
each row followed by U+001E, in UTF-8 (``datashare.proto``, ``RosterEnd``): any
agency's client, in any language, computes it from the values it sends.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator, Sequence

from google.type import date_pb2

from doudi.datashare.v1 import datashare_pb2 as pb

_FIELD = "\x1f"
_ROW = "\x1e"


def _day(message: pb.RosterRow, name: str) -> str:
    if not message.HasField(name):  # type: ignore[arg-type]
        return ""
    value: date_pb2.Date = getattr(message, name)
    return f"{value.year:04d}-{value.month:02d}-{value.day:02d}"


def _row_text(row: pb.RosterRow) -> str:
    return (
        f"{row.line}{_FIELD}{row.person_id}{_FIELD}{row.name}{_FIELD}{row.household_id}"
        f"{_FIELD}{row.status}{_FIELD}{_day(row, 'valid_from')}{_FIELD}"
        f"{_day(row, 'valid_to')}{_FIELD}{row.reference}{_ROW}"
    )


class RowsDigest:
    """The count and digest of the rows of a stream, message by message."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, rows: Sequence[pb.RosterRow]) -> None:
        self._hash.update("".join(map(_row_text, rows)).encode())
        self.count += len(rows)

    def end(self) -> pb.RosterEnd:
        return pb.RosterEnd(row_count=self.count, rows_digest=self._hash.digest())

    def matches(self, end: pb.RosterEnd) -> bool:
        return end.row_count == self.count and end.rows_digest == self._hash.digest()


def ended(messages: Iterable[pb.SubmitRosterRequest]) -> Iterator[pb.SubmitRosterRequest]:
    """A roster stream's messages, the last with the stream's end (the count and digest of
    their rows): one message fewer than an end of its own, so that a roster of one message
    is one write, which a hub refusing the stream at its header cannot meet half done."""
    digest = RowsDigest()
    last: pb.SubmitRosterRequest | None = None
    for message in messages:
        if last is not None:
            yield last
        digest.add(message.rows)
        last = message
    final = pb.SubmitRosterRequest()
    if last is not None:
        final.CopyFrom(last)  # the caller's message stays as it was
    final.end.CopyFrom(digest.end())
    yield final
