"""Submitting an agency's roster file to the datashare hub: ``doudi roster submit``.

The file is read a batch at a time (:func:`doudi.cli.roster_file.read_roster_batches`)
and sent over one ``SubmitRoster`` stream: the header (region, as-of date) with
the first rows, then the rows in messages of at most :data:`ROWS_PER_MESSAGE` rows and
:data:`MESSAGE_BYTES` bytes, then the stream's end: how many rows were sent and their
digest (:mod:`doudi.common.roster_stream`). The hub records the roster only once the
end has arrived and matches what it received, so a stream that breaks off for any
reason stores nothing, and the clerk is told so. Lines the file's reader cannot read
(a malformed date, an unknown status) are not sent; they and the rows the hub rejects
make one report, by line. If the file turns out not to be readable part way through,
the stream is cancelled before its end: nothing is stored.

A preview (``--dry-run``) is the same stream with the header's ``preview``: the report
says what the roster would change, whose statuses it would revoke, and that nothing was
stored. A roster that would revoke more than the hub's share of the agency's current
roster, or has no accepted row, is refused unless the clerk confirms the number of
revocations (``--confirm-revocations N``).

The hub takes the agency from the key; the header names the agency the clerk
means, and the hub refuses the stream (PERMISSION_DENIED) before storing
anything when the key is another agency's. A demo key of another agency is
refused here, and a key the hub does not know by a first call, before anything
is sent.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
from collections.abc import Callable, Iterable, Iterator, Mapping
from contextlib import closing
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Final

import grpc
from google.type import date_pb2

from doudi.cli import rpc_errors
from doudi.cli.demo import DEMO_AGENCY_KEYS
from doudi.cli.roster_file import LineError, RosterFile, read_roster_batches
from doudi.common.enums import AGENCIES, STATUSES
from doudi.common.errors import decode_status
from doudi.common.logs import mask_identity_numbers
from doudi.common.protos import from_date
from doudi.common.roster_stream import ended
from doudi.common.tls import TlsSettings
from doudi.core.errors import InvalidInput
from doudi.core.identity import mask
from doudi.datashare.v1 import datashare_pb2 as pb
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub

ADDRESS_ENV: Final = "DOUDI_DATASHARE_ADDRESS"
KEY_ENV: Final = "DOUDI_AGENCY_KEY"
CONNECT_SECONDS: Final = 5.0  # how long to wait for a connection to the hub
# Where `doudi run` starts the services (their settings' DEFAULT_PORT).
DEFAULT_ADDRESSES: Final = {
    "enrollment": "127.0.0.1:50051",
    "datashare": "127.0.0.1:50052",
    "assistance": "127.0.0.1:50054",
}
ROWS_PER_MESSAGE: Final = 10_000  # the hub's limit (services.datashare.rosters)
MESSAGE_BYTES: Final = 3 << 20  # a message stays below gRPC's default limit of 4 MiB

ENCODINGS: Final = {
    "utf-8-sig": "CSV, UTF-8 with BOM",
    "utf-8": "CSV, UTF-8",
    "gb18030": "CSV, GB18030",
    "xlsx": "Excel workbook",
}


class HubError(Exception):
    """The hub could not be reached, refused the submission, or knows the key as another
    agency's (``doudi`` exits with 1)."""


@dataclass(frozen=True, slots=True)
class Revoked:
    """A status the roster revokes: the person's row on the previous roster."""

    person_id: str
    name: str
    status: str
    reference: str
    previous_line: int


@dataclass(frozen=True, slots=True)
class Report:
    """What became of a roster file. ``rows`` counts the file's lines with a roster value
    (sent, or unreadable here); ``rejected`` the lines not stored (unreadable, or
    rejected by the hub); ``rejections`` every reason, by line, identity numbers masked.
    A replayed roster changed nothing: its changes are 0 and every accepted row unchanged.
    """

    file: str
    encoding: str
    agency: str
    region: str
    as_of: date
    submission_id: int
    replayed: bool
    rows: int
    accepted: int
    rejected: int
    asserted: int
    changed: int
    revoked: int
    unchanged: int
    rejections: tuple[LineError, ...]
    revocations: tuple[Revoked, ...] = ()
    preview: bool = False
    """A dry run: what the roster would change; nothing was stored."""

    def counts(self) -> dict[str, int]:
        return {
            "rows": self.rows,
            "accepted": self.accepted,
            "rejected": self.rejected,
            "asserted": self.asserted,
            "changed": self.changed,
            "revoked": self.revoked,
            "unchanged": self.unchanged,
        }

    def document(self) -> dict[str, object]:
        """The report as JSON values (``--json``)."""
        return {
            "file": self.file,
            "encoding": self.encoding,
            "agency": self.agency,
            "region": self.region,
            "as_of": self.as_of.isoformat(),
            "submission_id": self.submission_id,
            "replayed": self.replayed,
            "preview": self.preview,
            "counts": self.counts(),
            "rejections": [
                {"line": error.line, "field": error.field, "reason": error.reason}
                for error in self.rejections
            ],
            "revocations": [
                {
                    "person_id": mask(revoked.person_id),
                    "name": revoked.name,
                    "status": revoked.status,
                    "reference": revoked.reference,
                    "previous_line": revoked.previous_line,
                }
                for revoked in self.revocations
            ],
        }

    def text(self) -> str:
        """The report for the clerk."""
        if self.replayed:
            outcome = (
                f"submission {self.submission_id}: replayed: the hub already holds this "
                f"roster; nothing {'would change' if self.preview else 'changed'}"
            )
        elif self.preview:
            outcome = "dry run: what the roster would change; nothing was stored"
        else:
            outcome = f"submission {self.submission_id}: stored"
        lines = [
            f"{self.file} ({ENCODINGS.get(self.encoding, self.encoding)}): roster of "
            f"{self.agency} for region {self.region} as of {self.as_of.isoformat()}",
            outcome,
            *(f"  {name:<10} {count:>9,}" for name, count in self.counts().items()),
        ]
        if self.rejections:
            lines.append(f"rejected lines ({self.rejected:,}):")
            digits = len(str(self.rejections[-1].line))
            width = max(len(error.field) for error in self.rejections)
            lines += [
                f"  line {error.line:<{digits}}  {error.field:<{width}}  {error.reason}"
                for error in self.rejections
            ]
        if self.revocations:
            verb = "would lose" if self.preview else "lost"
            lines.append(
                f"persons no longer on the roster, who {verb} the status from "
                f"{self.as_of.isoformat()} ({len(self.revocations):,}):"
            )
            digits = len(str(max(revoked.previous_line for revoked in self.revocations)))
            lines += [
                f"  previous line {revoked.previous_line:<{digits}}  {mask(revoked.person_id)}  "
                f"{revoked.name}  {revoked.status}  {revoked.reference}"
                for revoked in self.revocations
            ]
        return "\n".join(lines) + "\n"


def default_address(service: str = "datashare") -> str:
    """``DOUDI_<SERVICE>_ADDRESS``, else where ``doudi run`` starts the service."""
    return os.environ.get(f"DOUDI_{service.upper()}_ADDRESS") or DEFAULT_ADDRESSES[service]


def choose_key(agency: str, given: str | None) -> tuple[str, bool]:
    """The key to present: ``given``, else ``DOUDI_AGENCY_KEY``, else the agency's demo key
    (then True: only a hub with ``DOUDI_ENVIRONMENT=local`` accepts it). ValueError when
    there is none."""
    key = given or os.environ.get(KEY_ENV)
    if key:
        return key, False
    for demo, owner in DEMO_AGENCY_KEYS.items():
        if owner == agency:
            return demo, True
    raise ValueError(f"no key for {agency}: give --key or set {KEY_ENV}")


def merge_rejections(
    unreadable: Iterable[LineError], rejected: Iterable[pb.RowRejection]
) -> tuple[LineError, ...]:
    """The file's unreadable values and the hub's rejections (the hub's
    ``rosters.Rejection``, the same shape as LineError) as one list by line, identity
    numbers in the reasons masked."""
    merged = [
        *unreadable,
        *(LineError(rejection.line, rejection.field, rejection.reason) for rejection in rejected),
    ]
    merged.sort(key=lambda error: error.line)
    return tuple(
        LineError(error.line, error.field, mask_identity_numbers(error.reason)) for error in merged
    )


def submit_roster(
    path: Path,
    *,
    agency: str,
    region: str,
    as_of: date,
    key: str,
    address: str,
    preview: bool = False,
    confirmed_revocations: int | None = None,
    progress: Callable[[int], object] = lambda line: None,
) -> Report:
    """Submit the roster file ``path`` as ``agency``'s full roster of ``region`` on ``as_of``
    (``preview``: only ask what it would change); ``confirmed_revocations`` is the number
    of revocations the clerk accepts. ``progress`` is told the file's last line read each
    time a batch has been sent.

    InvalidInput (field ``file``) when the file is not a roster that can be read, or
    none of its lines can; OSError when it cannot be opened: nothing is sent, or
    what was sent is dropped. HubError when the hub cannot be reached or refuses
    (``key`` another agency's among the reasons).
    """
    reading = _Reading()
    try:
        with closing(read_roster_batches(path, ROWS_PER_MESSAGE)) as batches:
            first = _first_lines(batches, reading)
            demo_owner = DEMO_AGENCY_KEYS.get(key)
            if demo_owner is not None and demo_owner != agency:
                raise HubError(
                    f"the key {key} is the demo key of {demo_owner}, not of {agency}; "
                    "nothing was sent"
                )
            header = pb.RosterHeader(
                region=region,
                as_of=from_date(as_of),
                agency=AGENCIES.value(agency),
                preview=preview,
                confirmed_revocations=confirmed_revocations,
            )
            requests = _ended(
                _requests(header, itertools.chain([first], batches), reading, progress), reading
            )
            answer = asyncio.run(_submit(address, key, requests))
    except grpc.aio.AioRpcError as error:
        raise _hub_error(address, error, reading) from None
    except InvalidInput as error:
        # A file found unreadable part way through: the stream was cancelled, not ended.
        outcome = (
            "the hub dropped the rows sent before: nothing was stored"
            if reading.messages
            else "nothing was sent"
        )
        raise InvalidInput(error.field, f"{error.message}; {outcome}") from None
    submission = answer.submission
    unreadable = len({error.line for error in reading.errors})
    rows = reading.rows + unreadable
    return Report(
        file=path.name,
        encoding=reading.encoding,
        agency=agency,
        region=region,
        as_of=as_of,
        submission_id=submission.submission_id,
        replayed=answer.replayed,
        rows=rows,
        accepted=submission.accepted_count,
        rejected=rows - submission.accepted_count,
        asserted=0 if answer.replayed else submission.asserted_count,
        changed=0 if answer.replayed else submission.changed_count,
        revoked=0 if answer.replayed else submission.revoked_count,
        unchanged=submission.accepted_count if answer.replayed else submission.unchanged_count,
        rejections=merge_rejections(reading.errors, answer.rejections),
        revocations=tuple(
            Revoked(
                revoked.person_id,
                revoked.name,
                STATUSES.code(revoked.status, "revocations.status"),
                revoked.reference,
                revoked.previous_line,
            )
            for revoked in answer.revocations
        ),
        preview=preview,
    )


# -- reading ------------------------------------------------------------------------------


@dataclass
class _Reading:
    """What was read and sent so far."""

    encoding: str = ""
    rows: int = 0
    messages: int = 0
    ended: bool = False
    """The stream's end was handed to gRPC: the hub may have recorded the roster."""
    errors: list[LineError] = field(default_factory=list)


def _first_lines(batches: Iterator[RosterFile], reading: _Reading) -> RosterFile:
    """The first batch with a line to send (the errors before it noted); InvalidInput when
    there is none: an empty roster would revoke every status of the agency's previous one."""
    for batch in batches:
        reading.encoding = batch.encoding
        if batch.lines:
            return batch
        reading.errors += batch.errors
    if not reading.errors:
        raise InvalidInput("file", "has no rows below the header")
    first = reading.errors[0]
    raise InvalidInput(
        "file",
        f"none of its {len({error.line for error in reading.errors}):,} rows can be read "
        f"(line {first.line}, {first.field}: {mask_identity_numbers(first.reason)})",
    )


def _requests(
    header: pb.RosterHeader,
    batches: Iterator[RosterFile],
    reading: _Reading,
    progress: Callable[[int], object],
) -> Iterator[pb.SubmitRosterRequest]:
    """The stream's messages but its end: the header in the first; the rows of each batch
    (at most ROWS_PER_MESSAGE lines) in as many messages as MESSAGE_BYTES needs.
    ``progress`` is told each batch's last line once it is sent."""
    dates: dict[date, date_pb2.Date] = {}  # a roster has few distinct dates

    def day(value: date | None) -> date_pb2.Date | None:
        if value is None:
            return None
        message = dates.get(value)
        if message is None:
            message = dates[value] = from_date(value)
        return message

    status = STATUSES.value
    for batch in batches:
        reading.errors += batch.errors
        if not batch.lines:
            continue
        message = pb.SubmitRosterRequest()
        add = message.rows.add
        for line in batch.lines:
            add(
                line=line.line,
                person_id=line.person_id,
                name=line.name,
                household_id=line.household_id,
                status=status(line.status),  # none: UNSPECIFIED, which the hub rejects
                valid_from=day(line.valid_from),
                valid_to=day(line.valid_to),
                reference=line.reference,
            )
        for part in _sized(message):
            if reading.messages == 0:
                part.header.CopyFrom(header)
            reading.messages += 1
            yield part
        reading.rows += len(batch.lines)
        progress(max(batch.lines[-1].line, batch.errors[-1].line if batch.errors else 0))


def _ended(
    messages: Iterator[pb.SubmitRosterRequest], reading: _Reading
) -> Iterator[pb.SubmitRosterRequest]:
    """The messages, the last with the stream's end; notes when the end is handed over."""
    for message in ended(messages):
        if message.HasField("end"):
            reading.ended = True
        yield message


def _sized(message: pb.SubmitRosterRequest) -> Iterator[pb.SubmitRosterRequest]:
    """The message, or its rows in consecutive messages that each stay below MESSAGE_BYTES,
    by the size each row takes encoded. A row that alone is larger cannot be sent (the
    file's reader bounds every cell far below it): InvalidInput naming its line."""
    if message.ByteSize() <= MESSAGE_BYTES:
        yield message
        return
    part = pb.SubmitRosterRequest()
    size = 0
    for row in message.rows:
        # A repeated field's entry: the row's bytes, a tag and a length of up to 5 bytes.
        row_size = row.ByteSize() + 6
        if row_size > MESSAGE_BYTES:
            raise InvalidInput(
                "file",
                f"line {row.line}: the row is {row_size:,} bytes, more than one message of "
                f"the stream carries ({MESSAGE_BYTES:,})",
            )
        if size + row_size > MESSAGE_BYTES:
            yield part
            part, size = pb.SubmitRosterRequest(), 0
        part.rows.append(row)
        size += row_size
    if part.rows:
        yield part


# -- the hub ------------------------------------------------------------------------------


async def _submit(
    address: str, key: str, requests: Iterator[pb.SubmitRosterRequest]
) -> pb.SubmitRosterResponse:
    metadata = (("authorization", f"Bearer {key}"),)
    # The answer lists every rejected row: for a large roster, more than gRPC's 4 MiB.
    options = [("grpc.max_receive_message_length", -1)]
    try:
        credentials = TlsSettings().channel_credentials()  # DOUDI_TLS_*: doudi.common.tls
    except ValueError as error:
        raise HubError(str(error)) from None
    async with (
        grpc.aio.insecure_channel(address, options=options)
        if credentials is None
        else grpc.aio.secure_channel(address, credentials, options=options)
    ) as channel:
        if not await _connected(channel):
            raise HubError(
                f"the datashare hub at {address} could not be reached (no connection within "
                f"{CONNECT_SECONDS:g} s); nothing was sent"
            )
        stub = DatashareServiceStub(channel)
        # The key is checked by a call of its own before the stream: a hub that refuses a
        # stream while rows are being written may end it with INTERNAL, not its reason.
        await stub.ListRosterSubmissions(
            pb.ListRosterSubmissionsRequest(page_size=1),
            metadata=metadata,
            timeout=CONNECT_SECONDS,
        )
        call = stub.SubmitRoster(metadata=metadata)
        try:
            try:
                for request in requests:  # reading the file between writes
                    await call.write(request)
                await call.done_writing()
            except asyncio.InvalidStateError:
                pass  # the hub ended the call early; its answer says why
            answer: pb.SubmitRosterResponse = await call
        except BaseException:
            # Not a half-close: the hub drops what it received instead of storing part
            # of the roster (and revoking the statuses of everyone not sent yet).
            call.cancel()
            raise
        return answer


async def _connected(channel: grpc.aio.Channel) -> bool:
    """Whether the channel connects (before a row is sent: a roster either reaches the hub
    or is known not to have); False at the first failed attempt or after CONNECT_SECONDS."""
    state = channel.get_state(try_to_connect=True)
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(CONNECT_SECONDS):
            while state not in (
                grpc.ChannelConnectivity.READY,
                grpc.ChannelConnectivity.TRANSIENT_FAILURE,
            ):
                await channel.wait_for_state_change(state)
                state = channel.get_state(try_to_connect=True)
    return state == grpc.ChannelConnectivity.READY


def _hub_error(address: str, error: grpc.aio.AioRpcError, reading: _Reading) -> HubError:
    status = decode_status(error)
    if status.reason in _REVOCATION_REASONS:
        return HubError(_revocation_refusal(status.reason, status.metadata))
    why = rpc_errors.sentence(status, "the datashare hub", address, "the roster")
    if not reading.messages:
        return HubError(f"{why}; nothing was sent")
    # The hub records a roster only once the stream's end has arrived: before it was
    # handed over, nothing can have been stored. After, the hub's own refusals (with
    # google.rpc.Status details) stored nothing; gRPC's failures may have come after the
    # hub recorded it.
    if reading.ended and not status.from_service:
        return HubError(
            f"the submission failed at its end: {why}; the roster may or may not be stored: "
            "submit it again (the same roster again changes nothing)"
        )
    return HubError(f"{why}; nothing was stored")


_REVOCATION_REASONS: Final = ("MASS_REVOCATION", "NO_ACCEPTED_ROWS", "REVOCATIONS_NOT_AS_CONFIRMED")


def _revocation_refusal(reason: str, metadata: Mapping[str, str]) -> str:
    """The hub's refusal of a roster's revocations, in the command's own words."""
    revocations = int(metadata.get("revocations", "0"))
    current = int(metadata.get("current_rows", "0"))
    confirm = (
        f"run the command again with --dry-run to see whose statuses it revokes, and with "
        f"--confirm-revocations {revocations} to store it if that is meant"
    )
    if reason == "NO_ACCEPTED_ROWS":
        return (
            f"the hub refused the roster: none of its rows was accepted, so it would revoke "
            f"every status on the agency's current roster of the region ({revocations:,}); "
            f"nothing was stored. Check the rejected lines; {confirm}"
        )
    if reason == "MASS_REVOCATION":
        limit = metadata.get("limit_percent", "?")
        return (
            f"the hub refused the roster: it would revoke {revocations:,} of the {current:,} "
            f"statuses on the agency's current roster of the region, more than the {limit}% "
            f"it takes unconfirmed (a file cut short, or of another region?); nothing was "
            f"stored. {confirm[0].upper()}{confirm[1:]}"
        )
    return (
        f"the hub refused the roster: it revokes {revocations:,} statuses, not the number "
        f"given to --confirm-revocations; nothing was stored. {confirm[0].upper()}{confirm[1:]}"
    )
