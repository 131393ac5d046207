"""The end of a ``SubmitRoster`` stream: how many rows were sent and their digest.

The client counts and digests the rows as it sends them and puts the result in the
stream's last message (``RosterEnd``); the hub does the same with the rows it received
and records the roster only when both agree. A stream that ends any other way (cut,
cancelled, a message lost, an old client that sends no end) stores nothing. The
digest is SHA-256 of the encoding of the rows in the order sent, as one
``SubmitRosterRequest`` holding only them would be written (``datashare.proto``,
``RosterEnd``): the same bytes however the rows were split into messages, since a
message's encoding is its rows' entries one after another. Any agency's client computes
it from the messages it sends, the hub from the messages it received, each by the
protobuf library's own serializer (a tenth of a second for 200,000 rows, against
seconds for a digest written out field by field in Python).
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator

from doudi.datashare.v1 import datashare_pb2 as pb


class RowsDigest:
    """The count and digest of the rows of a stream, message by message."""

    def __init__(self) -> None:
        self._hash = hashlib.sha256()
        self.count = 0

    def add(self, message: pb.SubmitRosterRequest) -> None:
        """Count and digest the rows of ``message`` (left as it is)."""
        if message.HasField("header") or message.HasField("end"):
            rows_only = pb.SubmitRosterRequest()
            rows_only.CopyFrom(message)
            rows_only.ClearField("header")
            rows_only.ClearField("end")
            message = rows_only
        self._hash.update(message.SerializeToString(deterministic=True))
        self.count += len(message.rows)

    def end(self) -> pb.RosterEnd:
        return pb.RosterEnd(row_count=self.count, rows_digest=self._hash.digest())


def ended(messages: Iterable[pb.SubmitRosterRequest]) -> Iterator[pb.SubmitRosterRequest]:
    """A roster stream's messages, the last with the stream's end (the count and digest of
    their rows): one message fewer than an end of its own, so that a roster of one message
    is one write, which a hub refusing the stream at its header cannot meet half done."""
    digest = RowsDigest()
    last: pb.SubmitRosterRequest | None = None
    for message in messages:
        if last is not None:
            yield last
        digest.add(message)
        last = message
    final = pb.SubmitRosterRequest()
    if last is not None:
        final.CopyFrom(last)  # the caller's message stays as it was
    final.end.CopyFrom(digest.end())
    yield final
