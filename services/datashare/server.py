"""The datashare service's gRPC server: ``python -m services.datashare``.

Callers are the platform (the internal token) and the agencies (their own API
keys, kept by the hub as digests: services/datashare/agency_keys.py); hospitals are not
callers of this service. The platform
may name the web console's account a call is made for (``doudi-console-user``): an
agency clerk's is served as its agency's key (:meth:`DatashareServicer._caller`).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import grpc
import sqlalchemy

from doudi.common import keys as common_keys
from doudi.common import outbox
from doudi.common import warnings as common_warnings
from doudi.common.db import read_in_thread, write_in_thread
from doudi.common.enums import (
    AGENCIES,
    COMPARISON_CLASSES,
    CONSOLE_ROLES,
    STATUSES,
)
from doudi.common.errors import PermissionDenied, Unauthenticated
from doudi.common.grpc_server import (
    Authenticator,
    Caller,
    CallerKind,
    Registrar,
    ServiceSpec,
    Setup,
    chain,
    current_caller,
    internal_authenticator,
    run_service,
)
from doudi.common.outbox import Sender, received_batch, received_person
from doudi.common.protos import optional_date, to_date, to_timestamp
from doudi.core.dates import check_year
from doudi.core.errors import InvalidInput
from doudi.core.packs import PackRegistry
from doudi.core.statuses import AGENCIES as STATUS_AGENCIES
from doudi.core.statuses import ASSERT, REVOKE
from doudi.datashare.v1 import datashare_pb2, datashare_pb2_grpc
from services.datashare import (
    agency_keys,
    comparison,
    console_users,
    rosters,
    service,
    warnings,
)
from services.datashare.delivery import Deliveries, start_deliveries
from services.datashare.messages import (
    assertion_message,
    comparison_message,
    entry_message,
    event_message,
    period_message,
    revocation_message,
    roster_row,
    submission_message,
)
from services.datashare.settings import DEFAULT_PORT, AgencyKey, Settings
from services.datashare.warning_delivery import decision_sender

T = TypeVar("T")

log = logging.getLogger("doudi.datashare")

SPEC = ServiceSpec(
    name="datashare",
    service_name="doudi.datashare.v1.DatashareService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)


class DatashareServicer(datashare_pb2_grpc.DatashareServiceServicer):
    def __init__(
        self,
        engine: sqlalchemy.Engine,
        delivery: Deliveries,
        regions: frozenset[str],
        revocation_limit_percent: int = 5,
        *,
        decisions: Sender,
        dummy_hash: str,
        lockout_attempts: int = 5,
        lockout: timedelta = timedelta(minutes=15),
        key_cache: common_keys.KeyCache[AgencyKey] | None = None,
    ) -> None:
        self.engine = engine
        self.delivery = delivery
        self.regions = regions
        self.revocation_limit_percent = revocation_limit_percent
        self.decisions = decisions
        # --- the console's accounts: an unknown user's password is checked against this ---
        self.dummy_hash = dummy_hash
        self.lockout_attempts = lockout_attempts
        self.lockout = lockout
        # --- the agencies' keys: remembered by the authenticator, forgotten on a rotation ---
        self.key_cache = key_cache or common_keys.KeyCache(0)

    async def AssertStatus(
        self,
        request: datashare_pb2.AssertStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.AssertStatusResponse:
        caller = await self._caller(context, "agency", "internal")
        agency = acting_agency(caller, context.invocation_metadata())
        handler = service.record_status if caller.kind == "agency" else record_status_for_agency
        assertion = await self._record(ASSERT, request, request.household_id, agency, handler)
        return datashare_pb2.AssertStatusResponse(assertion=assertion_message(assertion))

    async def RevokeStatus(
        self,
        request: datashare_pb2.RevokeStatusRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.RevokeStatusResponse:
        agency = (await self._caller(context, "agency")).id
        assertion = await self._record(REVOKE, request, None, agency, service.record_status)
        return datashare_pb2.RevokeStatusResponse(assertion=assertion_message(assertion))

    async def _record(
        self,
        kind: str,
        request: datashare_pb2.AssertStatusRequest | datashare_pb2.RevokeStatusRequest,
        household_id: str | None,
        agency: str,
        handler: Callable[..., service.Assertion],
    ) -> service.Assertion:
        assertion = await write_in_thread(
            self.engine,
            handler,
            kind=kind,
            agency=agency,
            person_id=request.person_id,
            household_id=household_id,
            status=STATUSES.code(request.status, "status"),
            valid_from=to_date(request.valid_from, "valid_from"),
            valid_to=optional_date(request, "valid_to", "valid_to"),
            reference=request.reference,
        )
        # Also on a repeated request: a send that failed the first time goes now.
        await self.delivery.send_now([assertion.person_id])
        return assertion

    async def GetPersonStatuses(
        self,
        request: datashare_pb2.GetPersonStatusesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.GetPersonStatusesResponse:
        reader = await self._reading_agency(context)
        periods = await self._agency_read(
            reader,
            service.person_statuses,
            person_id=request.person_id,
            on_date=optional_date(request, "on_date", "on_date"),
            purpose=request.purpose,
        )
        return datashare_pb2.GetPersonStatusesResponse(periods=[period_message(p) for p in periods])

    async def ListStatusAssertions(
        self,
        request: datashare_pb2.ListStatusAssertionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListStatusAssertionsResponse:
        reader = await self._reading_agency(context)
        page = await self._agency_read(
            reader,
            service.list_assertions,
            person_id=request.person_id,
            purpose=request.purpose,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListStatusAssertionsResponse(
            assertions=[assertion_message(a) for a in page.items],
            next_page_token=page.next_page_token,
        )

    async def ListAuditEvents(
        self,
        request: datashare_pb2.ListAuditEventsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListAuditEventsResponse:
        await self._caller(context, "internal")
        page = await read_in_thread(
            self.engine,
            service.list_audit_events,
            person_id=request.person_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListAuditEventsResponse(
            events=[event_message(e) for e in page.items], next_page_token=page.next_page_token
        )

    async def _caller(
        self,
        context: grpc.aio.ServicerContext[Any, Any],
        *kinds: CallerKind,
        clerks: bool = False,
    ) -> Caller:
        """Who the call is served as, if of one of ``kinds`` (PERMISSION_DENIED otherwise):
        the authenticated caller, or for an internal call made for a console account
        (``doudi-console-user``) the account's: an agency clerk's as its agency with the
        account's regions, as if the agency's key had called (only where ``clerks``: the
        methods agencies call; the reads audited with the username,
        :func:`service.acting_for_console`), a staff member's as the platform. An unknown
        or disabled account is PERMISSION_DENIED."""
        caller = current_caller()
        named = [
            str(value) for key, value in context.invocation_metadata() or () if key == CONSOLE_USER
        ]
        if named:
            user = await self._console_user(caller, named)
            if user.role == console_users.AGENCY_CLERK:
                if not clerks:
                    raise PermissionDenied(
                        "an agency clerk may not call this method through the console",
                        field=CONSOLE_USER,
                    )
                warnings.serving(user.served_regions)
                service.acting_for_console(user.username)
                caller = Caller("agency", str(user.agency))
        if caller.kind not in kinds:
            raise PermissionDenied(f"{caller.kind} callers may not call this method")
        return caller

    async def _console_user(self, caller: Caller, named: list[str]) -> console_users.ConsoleUser:
        """The enabled console account an internal call is made for."""
        if caller.kind != "internal":
            raise PermissionDenied(
                f"only the platform calls for a console user, not {caller.kind} callers",
                field=CONSOLE_USER,
            )
        if len(named) != 1:
            raise InvalidInput(CONSOLE_USER, "the one console user the call is made for")
        username = console_users.known_username(named[0])
        user = None
        if username is not None:
            user = await read_in_thread(self.engine, console_users.find, username=username)
        if user is None or user.disabled:
            raise PermissionDenied(
                f"no enabled console user {named[0].strip().lower()[:40]!r}",
                reason="CONSOLE_USER_REFUSED",
                field=CONSOLE_USER,
            )
        return user

    async def _reading_agency(self, context: grpc.aio.ServicerContext[Any, Any]) -> str | None:
        """The agency whose reads are limited and audited; None for the platform."""
        caller = await self._caller(context, "internal", "agency", clerks=True)
        return caller.id if caller.kind == "agency" else None

    async def _warning_reader(
        self, context: grpc.aio.ServicerContext[Any, Any], *kinds: CallerKind
    ) -> warnings.Reader:
        """An agency with the regions its key (or console account) serves, or the platform
        (every region)."""
        caller = await self._caller(context, *kinds, clerks=True)
        if caller.kind != "agency":
            return warnings.Reader(None, None)
        # An agency warnings do not go to is refused here, before its request is read.
        return warnings.Reader.of(caller.id, warnings.key_regions())

    async def _agency_read(
        self, agency: str | None, handler: Callable[..., T], /, **arguments: Any
    ) -> T:
        """``handler(connection=..., agency=agency, **arguments)`` in a worker thread: for an
        agency in a write transaction, in which the handler records the read
        (:func:`service.record_reads`); for the platform on a plain read connection."""
        run = read_in_thread if agency is None else write_in_thread
        return await run(self.engine, handler, agency=agency, **arguments)

    # --- rosters ----------------------------------------------------------------------

    async def SubmitRoster(
        self,
        request_iterator: AsyncIterator[datashare_pb2.SubmitRosterRequest],
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.SubmitRosterResponse:
        agency = (await self._caller(context, "agency")).id
        # Each step runs to its end in its thread even if the call is cancelled meanwhile
        # (the agency's client went away): what it did is then known, and undone unless
        # the roster was recorded.
        begun: list[rosters.Receiving] = []
        finished: list[rosters.Finished] = []
        rejections: list[rosters.Rejection] = []
        end: datashare_pb2.RosterEnd | None = None
        try:
            async for message in request_iterator:
                if end is not None:
                    raise InvalidInput("end", "only the stream's last message carries its end")
                if not begun:
                    header = self._roster_header(message, agency)
                    await _to_the_end(
                        write_in_thread(self.engine, rosters.begin, agency=agency, **header),
                        begun.append,
                    )
                elif message.HasField("header"):
                    raise InvalidInput("header", "only the first message carries the header")
                rejections += await _to_the_end(self._add_rows(begun[0], message))
                if message.HasField("end"):
                    end = message.end
            if not begun:
                raise InvalidInput("header", "required: the stream carried no message")
            _check_end(begun[0], end)
            await _to_the_end(
                write_in_thread(self.engine, rosters.finish, receiving=begun[0]), finished.append
            )
        except BaseException:
            if begun and not finished:
                await asyncio.shield(
                    write_in_thread(
                        self.engine, rosters.abandon, submission_id=begun[0].submission_id
                    )
                )
            raise
        (done,) = finished
        # The first batch of changed persons reaches settlement before the agency is
        # answered; the background loop sends the rest at once (and these, if settlement
        # is down).
        if not done.replayed and done.submission.state == rosters.CURRENT:
            await self.delivery.send_set_start(
                done.submission.submission_id, done.first_persons, done.first_until
            )
            self.delivery.wake()
        return datashare_pb2.SubmitRosterResponse(
            submission=submission_message(done.submission),
            rejections=[
                datashare_pb2.RowRejection(line=r.line, field=r.field, reason=r.reason, code=r.code)
                for r in sorted(rejections, key=lambda rejection: rejection.line)
            ],
            replayed=done.replayed,
            revocations=[revocation_message(revocation) for revocation in done.revocations],
        )

    async def _add_rows(
        self, receiving: rosters.Receiving, message: datashare_pb2.SubmitRosterRequest
    ) -> list[rosters.Rejection]:
        """One message's rows read and checked in a worker thread (10,000 rows take a
        while), outside any transaction; the accepted ones stored in a transaction."""

        def check() -> tuple[list[tuple[Any, ...]], list[rosters.Rejection]]:
            receiving.digest.add(message)
            return rosters.checked_rows(receiving, [roster_row(row) for row in message.rows])

        accepted, rejections = await asyncio.to_thread(check)
        if accepted:
            await write_in_thread(self.engine, rosters.store_rows, rows=accepted)
        return rejections

    def _roster_header(
        self, message: datashare_pb2.SubmitRosterRequest, agency: str
    ) -> dict[str, Any]:
        """The first message's header, checked: what the roster is of."""
        if not message.HasField("header"):
            raise InvalidInput("header", "the first message must carry the header")
        header = message.header
        meant = AGENCIES.optional_code(header.agency, "header.agency")
        if meant is not None and meant != agency:
            raise PermissionDenied(f"the key is {agency}'s, not {meant}'s", field="header.agency")
        rosters.check_region(header.region, self.regions)
        confirmed = None
        if header.HasField("confirmed_revocations"):
            confirmed = header.confirmed_revocations
            if confirmed < 0:
                raise InvalidInput(
                    "header.confirmed_revocations", f"a number of revocations, not {confirmed}"
                )
        return {
            "region": header.region,
            "as_of": to_date(header.as_of, "header.as_of"),
            "preview": header.preview,
            "confirmed_revocations": confirmed,
            "revocation_limit_percent": self.revocation_limit_percent,
        }

    async def GetRosterSubmission(
        self,
        request: datashare_pb2.GetRosterSubmissionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.GetRosterSubmissionResponse:
        reader = await self._reading_agency(context)
        submission = await self._agency_read(
            reader, rosters.get, submission_id=request.submission_id
        )
        return datashare_pb2.GetRosterSubmissionResponse(submission=submission_message(submission))

    async def ListRosterSubmissions(
        self,
        request: datashare_pb2.ListRosterSubmissionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListRosterSubmissionsResponse:
        reader = await self._reading_agency(context)
        page, token = await self._agency_read(
            reader,
            rosters.list_submissions,
            region=request.region,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListRosterSubmissionsResponse(
            submissions=[submission_message(submission) for submission in page],
            next_page_token=token,
        )

    # --- the register's copy and the comparisons ---------------------------------------

    async def RecordRegister(
        self,
        request: datashare_pb2.RecordRegisterRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.RecordRegisterResponse:
        await self._caller(context, "internal")
        persons = []
        for where, person in received_batch(request.persons):
            person_id = received_person(person.person_id, person.version, where)
            if not person.region or len(person.region) > 32:
                raise InvalidInput(f"{where}.region", "required: the person's pooling region")
            persons.append(
                comparison.RegisteredPerson(
                    person_id=person_id,
                    version=person.version,
                    name=service.text_field(person.name, f"{where}.name"),
                    region=person.region,
                    years=tuple(person.years),
                )
            )
        versions = await write_in_thread(
            self.engine, comparison.record_register, persons=persons, now=datetime.now(UTC)
        )
        return datashare_pb2.RecordRegisterResponse(versions=versions)

    async def CompareRosters(
        self,
        request: datashare_pb2.CompareRostersRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.CompareRostersResponse:
        await self._caller(context, "internal")
        result = await write_in_thread(
            self.engine,
            comparison.compare,
            region=request.region,
            year=request.year,
            regions=self.regions,
        )
        return datashare_pb2.CompareRostersResponse(comparison=comparison_message(result))

    async def GetComparison(
        self,
        request: datashare_pb2.GetComparisonRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.GetComparisonResponse:
        reader = await self._reading_agency(context)
        result = await self._agency_read(
            reader, comparison.get, comparison_id=request.comparison_id
        )
        return datashare_pb2.GetComparisonResponse(comparison=comparison_message(result))

    async def ListComparisons(
        self,
        request: datashare_pb2.ListComparisonsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListComparisonsResponse:
        reader = await self._reading_agency(context)
        page, token = await self._agency_read(
            reader,
            comparison.list_comparisons,
            region=request.region,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListComparisonsResponse(
            comparisons=[comparison_message(item) for item in page], next_page_token=token
        )

    async def ListComparisonEntries(
        self,
        request: datashare_pb2.ListComparisonEntriesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListComparisonEntriesResponse:
        reader = await self._reading_agency(context)
        page, token = await self._agency_read(
            reader,
            comparison.list_entries,
            comparison_id=request.comparison_id,
            klass=COMPARISON_CLASSES.optional_code(getattr(request, "class"), "class"),
            duplicates_only=request.duplicates_only,
            purpose=request.purpose,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListComparisonEntriesResponse(
            entries=[entry_message(entry) for entry in page], next_page_token=token
        )

    # --- dual early warning -----------------------------------------------------------

    async def RecordWarnings(
        self,
        request: datashare_pb2.RecordWarningsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.RecordWarningsResponse:
        await self._caller(context, "internal")
        if not request.warnings:
            raise InvalidInput("warnings", "required: at least one warning")
        if len(request.warnings) > common_warnings.MAX_BATCH:
            raise InvalidInput("warnings", f"at most {common_warnings.MAX_BATCH} per call")
        received = [
            common_warnings.received_warning(common_warnings.HUB, warning, f"warnings[{index}]")
            for index, warning in enumerate(request.warnings)
        ]
        versions = await write_in_thread(self.engine, warnings.record_warnings, received=received)
        return datashare_pb2.RecordWarningsResponse(versions=versions)

    async def ListWarnings(
        self,
        request: datashare_pb2.ListWarningsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListWarningsResponse:
        reader = await self._warning_reader(context, "internal", "agency")
        if request.year:
            check_year(request.year, "year")
        on = common_warnings.as_of(request)
        found, token = await self._agency_read(
            reader.agency,
            warnings.list_warnings,
            regions=reader.regions,
            region=request.region,
            year=request.year,
            **common_warnings.listing_filters(common_warnings.HUB, request),
            purpose=request.purpose,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListWarningsResponse(
            warnings=[_warning_message(warning, on) for warning in found],
            next_page_token=token,
        )

    async def GetWarning(
        self,
        request: datashare_pb2.GetWarningRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.GetWarningResponse:
        reader = await self._warning_reader(context, "internal", "agency")
        found = await self._agency_read(
            reader.agency,
            warnings.get_warning,
            regions=reader.regions,
            warning_id=request.warning_id,
            purpose=request.purpose,
        )
        return datashare_pb2.GetWarningResponse(
            warning=_warning_message(found, common_warnings.as_of(request))
        )

    async def AcknowledgeWarning(
        self,
        request: datashare_pb2.AcknowledgeWarningRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.AcknowledgeWarningResponse:
        reader = await self._warning_reader(context, "agency")
        found = await write_in_thread(
            self.engine,
            warnings.acknowledge,
            agency=reader.agency,
            regions=reader.regions,
            warning_id=request.warning_id,
            now=datetime.now(UTC),
        )
        await self.decisions.send_now([str(found.warning_id)])
        return datashare_pb2.AcknowledgeWarningResponse(
            warning=_warning_message(found, common_warnings.as_of(None))
        )

    async def DecideWarning(
        self,
        request: datashare_pb2.DecideWarningRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.DecideWarningResponse:
        reader = await self._warning_reader(context, "agency")
        which = request.WhichOneof("decision")
        if which is None:
            raise InvalidInput("decision", "required: certify or dismiss")
        certification = None
        if which == "certify":
            certify = request.certify
            certification = warnings.Certification(
                status=STATUSES.code(certify.status, "certify.status"),
                valid_from=to_date(certify.valid_from, "certify.valid_from"),
                valid_to=optional_date(certify, "valid_to", "certify.valid_to"),
            )
        found, changed = await write_in_thread(
            self.engine,
            warnings.decide,
            agency=reader.agency,
            regions=reader.regions,
            warning_id=request.warning_id,
            certification=certification,
            reason=request.dismiss.reason if which == "dismiss" else None,
            now=datetime.now(UTC),
        )
        # The statuses certified reach settlement before the agency is answered, as any
        # assertion's; the decision goes back to assistance.
        await self.delivery.send_now(changed)
        await self.decisions.send_now([str(found.warning_id)])
        return datashare_pb2.DecideWarningResponse(
            warning=_warning_message(found, common_warnings.as_of(None))
        )

    # --- the console's accounts -------------------------------------------------------

    async def CreateConsoleUser(
        self,
        request: datashare_pb2.CreateConsoleUserRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.CreateConsoleUserResponse:
        await self._caller(context, "internal")
        account = console_users.checked_account(
            username=request.username,
            display_name=request.display_name,
            role=CONSOLE_ROLES.code(request.role, "role"),
            agency=request.agency,
            regions=list(request.regions),
            password=request.password,
            known_regions=self.regions,
        )
        password_hash = await asyncio.to_thread(console_users.hash_password, request.password)
        user = await write_in_thread(
            self.engine,
            console_users.create,
            account=account,
            password_hash=password_hash,
            now=datetime.now(UTC),
        )
        return datashare_pb2.CreateConsoleUserResponse(user=_user_message(user))

    async def GetConsoleUser(
        self,
        request: datashare_pb2.GetConsoleUserRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.GetConsoleUserResponse:
        await self._caller(context, "internal")
        user = await read_in_thread(self.engine, console_users.get, username=request.username)
        return datashare_pb2.GetConsoleUserResponse(user=_user_message(user))

    async def ListConsoleUsers(
        self,
        request: datashare_pb2.ListConsoleUsersRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListConsoleUsersResponse:
        await self._caller(context, "internal")
        users, token = await read_in_thread(
            self.engine,
            console_users.list_users,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return datashare_pb2.ListConsoleUsersResponse(
            users=[_user_message(user) for user in users], next_page_token=token
        )

    async def DisableConsoleUser(
        self,
        request: datashare_pb2.DisableConsoleUserRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.DisableConsoleUserResponse:
        await self._caller(context, "internal")
        user = await write_in_thread(self.engine, console_users.disable, username=request.username)
        return datashare_pb2.DisableConsoleUserResponse(user=_user_message(user))

    async def ResetConsolePassword(
        self,
        request: datashare_pb2.ResetConsolePasswordRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ResetConsolePasswordResponse:
        await self._caller(context, "internal")
        console_users.username_of(request.username)
        password = console_users.check_password(request.password)
        password_hash = await asyncio.to_thread(console_users.hash_password, password)
        user = await write_in_thread(
            self.engine,
            console_users.reset_password,
            username=request.username,
            password_hash=password_hash,
            now=datetime.now(UTC),
        )
        return datashare_pb2.ResetConsolePasswordResponse(user=_user_message(user))

    async def AuthenticateConsoleUser(
        self,
        request: datashare_pb2.AuthenticateConsoleUserRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.AuthenticateConsoleUserResponse:
        await self._caller(context, "internal")
        username = console_users.known_username(request.username)
        stored = None
        if username is not None:
            stored = await read_in_thread(self.engine, console_users.find_stored, username=username)
        now = datetime.now(UTC)
        matched: bool | None = None
        rehashed = None
        if stored is None or stored.user.disabled or not stored.user.locked(now):
            # An unknown or disabled account is checked against a hash all the same: the
            # time taken does not tell whether it exists.
            password_hash = self.dummy_hash if stored is None else stored.password_hash
            matched = await asyncio.to_thread(_check, password_hash, request.password)
            if matched and stored is not None and console_users.needs_rehash(password_hash):
                rehashed = await asyncio.to_thread(console_users.hash_password, request.password)
        login = await write_in_thread(
            self.engine,
            console_users.record_login,
            given=request.username,
            stored=stored,
            matched=matched,
            rehashed=rehashed,
            now=now,
            attempts=self.lockout_attempts,
            lock_for=self.lockout,
        )
        if login.outcome == console_users.SUCCESS and login.user is not None:
            return datashare_pb2.AuthenticateConsoleUserResponse(user=_user_message(login.user))
        until = None if login.user is None else login.user.lock_in_force(now)
        if login.outcome == console_users.LOCKED and until is not None:
            raise Unauthenticated(
                "too many failed logins: the account is locked until "
                f"{until.isoformat()}; an administrator may reset its password",
                reason="LOCKED",
                metadata={"locked_until": until.isoformat()},
            )
        raise Unauthenticated(BAD_CREDENTIALS, reason="BAD_CREDENTIALS")

    async def RecordPersonView(
        self,
        request: datashare_pb2.RecordPersonViewRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.RecordPersonViewResponse:
        await self._caller(context, "internal")
        view = await write_in_thread(
            self.engine,
            console_users.record_person_view,
            username=request.username,
            person_id=request.person_id,
            purpose=request.purpose,
            now=datetime.now(UTC),
        )
        if view.refused is not None:  # the refusal is recorded (committed) first
            raise PermissionDenied(view.refused, field=view.field)
        return datashare_pb2.RecordPersonViewResponse(event_id=view.event_id)

    # --- the agencies' API keys --------------------------------------------------------

    async def CreateAgencyClient(
        self,
        request: datashare_pb2.CreateAgencyClientRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.CreateAgencyClientResponse:
        await self._caller(context, "internal")
        agency, regions, label = agency_keys.checked_client(
            agency=request.agency,
            regions=list(request.regions),
            label=request.label,
            known_regions=self.regions,
        )
        api_key = common_keys.new_key()
        now = datetime.now(UTC)
        client = await write_in_thread(
            self.engine,
            agency_keys.create_client,
            agency=agency,
            regions=regions,
            label=label,
            api_key_sha256=common_keys.digest(api_key),
            now=now,
        )
        log.info("agency client %s of %s: created with its first key", client.client_id, agency)
        return datashare_pb2.CreateAgencyClientResponse(
            client=await self._client_message(client, now), api_key=api_key
        )

    async def ListAgencyClients(
        self,
        request: datashare_pb2.ListAgencyClientsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.ListAgencyClientsResponse:
        await self._caller(context, "internal")
        found, token = await read_in_thread(
            self.engine,
            agency_keys.list_clients,
            page_size=request.page_size,
            page_token=request.page_token,
            now=datetime.now(UTC),
        )
        return datashare_pb2.ListAgencyClientsResponse(
            clients=[client_message(client, stored) for client, stored in found],
            next_page_token=token,
        )

    async def RotateAgencyKey(
        self,
        request: datashare_pb2.RotateAgencyKeyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.RotateAgencyKeyResponse:
        await self._caller(context, "internal")
        client_id = checked_client_id(request.client_id)
        overlap = common_keys.overlap_seconds(request.overlap_seconds)
        api_key = common_keys.new_key()
        now = datetime.now(UTC)
        client, retires = await write_in_thread(
            self.engine,
            agency_keys.rotate,
            client_id=client_id,
            api_key_sha256=common_keys.digest(api_key),
            now=now,
            overlap=overlap,
        )
        self.key_cache.forget()
        log.info("agency client %s: a new key; the older ones retire at %s", client_id, retires)
        return datashare_pb2.RotateAgencyKeyResponse(
            client=await self._client_message(client, now),
            api_key=api_key,
            older_keys_retire_time=to_timestamp(retires),
        )

    async def EndAgencyKeyRotation(
        self,
        request: datashare_pb2.EndAgencyKeyRotationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> datashare_pb2.EndAgencyKeyRotationResponse:
        await self._caller(context, "internal")
        client_id = checked_client_id(request.client_id)
        now = datetime.now(UTC)
        client, retired = await write_in_thread(
            self.engine, agency_keys.end_rotation, client_id=client_id, now=now
        )
        self.key_cache.forget()
        log.info("agency client %s: %d older keys retired", client_id, retired)
        return datashare_pb2.EndAgencyKeyRotationResponse(
            client=await self._client_message(client, now), retired_count=retired
        )

    async def _client_message(
        self, client: agency_keys.Client, now: datetime
    ) -> datashare_pb2.AgencyClient:
        stored = await read_in_thread(
            self.engine, agency_keys.keys_of, client_id=client.client_id, now=now
        )
        return client_message(client, stored)


BAD_CREDENTIALS = "wrong username or password"
"""What a login with a wrong password, an unknown username or a disabled account is told."""


def _check(password_hash: str, password: str) -> bool:
    """Whether the password matches the hash; one longer than any account may have matches
    nothing (and is not hashed)."""
    if len(password) > console_users.MAX_PASSWORD_LENGTH:
        return False
    return console_users.verify(password_hash, password)


def _user_message(user: console_users.ConsoleUser) -> datashare_pb2.ConsoleUser:
    message = datashare_pb2.ConsoleUser(
        username=user.username,
        display_name=user.display_name,
        role=CONSOLE_ROLES.value(user.role),
        agency=user.agency or "",
        regions=user.regions,
        disabled=user.disabled,
        created_at=to_timestamp(user.created_at),
        password_changed_at=to_timestamp(user.password_changed_at),
        failed_logins=user.failed_logins,
    )
    until = user.lock_in_force(datetime.now(UTC))
    if until is not None:
        message.locked_until.CopyFrom(to_timestamp(until))
    return message


def _warning_message(warning: common_warnings.Warning, on: date) -> datashare_pb2.Warning:
    message: datashare_pb2.Warning = common_warnings.warning_message(
        common_warnings.HUB, warning, on
    )
    return message


def _check_end(receiving: rosters.Receiving, end: datashare_pb2.RosterEnd | None) -> None:
    """InvalidInput unless the stream's end arrived and declares the rows received."""
    if end is None:
        raise InvalidInput(
            "end",
            "the stream ended without its end (the row count and digest of what was sent): "
            "it was cut short; nothing was stored",
        )
    received = receiving.digest.count
    if end.row_count != received:
        raise InvalidInput(
            "end.row_count",
            f"the stream's end declares {end.row_count:,} rows, but {received:,} arrived: "
            "nothing was stored",
        )
    if end.rows_digest != receiving.digest.end().rows_digest:
        raise InvalidInput(
            "end.rows_digest",
            "the rows that arrived are not the rows sent (their digest differs): "
            "nothing was stored",
        )


async def _to_the_end(step: Awaitable[T], keep: Callable[[T], object] | None = None) -> T:
    """Await ``step`` (work in a worker thread); ``keep`` gets its result. If the caller is
    cancelled meanwhile, the step still runs to its end (its transaction committed or
    rolled back) and ``keep`` still gets a result before the cancellation goes on."""
    task = asyncio.ensure_future(step)
    try:
        result = await asyncio.shield(task)
    except asyncio.CancelledError:
        while not task.done():
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait({task})
        if keep is not None and not task.cancelled() and task.exception() is None:
            keep(task.result())
        raise
    if keep is not None:
        keep(result)
    return result


async def _abandon_stale_rosters(engine: sqlalchemy.Engine, max_seconds: float) -> None:
    """Every half of ``max_seconds``, abandon the roster submissions receiving rows for
    longer (:func:`rosters.abandon_stale`): a stream cut by a killed process leaves its
    submission receiving and its rows in ``received_rows`` otherwise."""
    while True:
        opened_before = datetime.now(UTC) - timedelta(seconds=max_seconds)
        try:
            abandoned = await write_in_thread(
                engine, rosters.abandon_stale, opened_before=opened_before
            )
        except sqlalchemy.exc.DBAPIError as error:
            log.warning("cannot abandon stale roster submissions: %s", error)
        else:
            if abandoned:
                log.warning(
                    "abandoned %d roster submissions receiving rows for more than %g s",
                    abandoned,
                    max_seconds,
                )
        await asyncio.sleep(max_seconds / 2)


# --- the platform asserting on an agency's behalf (issue 18: applications) ---------------

ACTING_FOR = "doudi-acting-for"
"""The call metadata in which the platform names the agency it asserts a status for."""
CONSOLE_USER = "doudi-console-user"
"""The call metadata in which the platform (the gateway's console) names the console
account a call is made for (:meth:`DatashareServicer._caller`)."""


def acting_agency(caller: Caller, metadata: Iterable[tuple[str, Any]] | None) -> str:
    """The agency an assertion is recorded for: an agency caller's own (it may name only
    itself in ``doudi-acting-for``); the agency the platform names there (the bureau
    certifying expenditure_hardship on behalf of civil affairs, docs/domain.md section 7)."""
    named = [str(value) for key, value in metadata or () if key == ACTING_FOR]
    if caller.kind == "agency":
        if any(name != caller.id for name in named):
            raise PermissionDenied(
                f"{caller.id} may not assert a status for another agency", field=ACTING_FOR
            )
        return caller.id
    if not named:
        raise PermissionDenied(
            f"the platform certifies no status of its own: it names the agency it acts for "
            f"in {ACTING_FOR}",
            field=ACTING_FOR,
        )
    if len(named) != 1 or named[0] not in STATUS_AGENCIES:
        raise InvalidInput(
            ACTING_FOR,
            "the platform names the one agency it asserts for "
            f"(one of {', '.join(sorted(STATUS_AGENCIES))})",
        )
    return named[0]


def record_status_for_agency(
    *, connection: sqlalchemy.Connection, agency: str, **arguments: Any
) -> service.Assertion:
    """The platform's assertion for ``agency``, recorded as the agency's (it owns the
    status), and audited as the platform's in the same transaction: caller ``platform``,
    the purpose naming the agency and the reference."""
    assertion = service.record_status(connection=connection, agency=agency, **arguments)
    service.record_reads(
        connection,
        agency="platform",
        method="AssertStatus",
        purpose=f"asserted for {agency}: {assertion.reference}",
        person_ids=[assertion.person_id],
    )
    return assertion


def agency_authenticator(
    engine: sqlalchemy.Engine, cache: common_keys.KeyCache[AgencyKey]
) -> Authenticator:
    """Accepts an agency's live API key as the caller ``agency/<code>``; the regions the key
    serves hold for the call (:func:`warnings.key_regions`). Keys are looked up by their
    digest and remembered in ``cache``, never past their retirement (a rotation made by
    another replica is seen when the cache's time runs out)."""

    async def authenticate(token: str) -> Caller | None:
        digest = common_keys.digest(token)
        credential = cache.get(digest)
        if credential is None:
            found = await read_in_thread(
                engine, agency_keys.by_key, api_key_sha256=digest, now=datetime.now(UTC)
            )
            if found is None:
                return None
            credential, retires_at = found
            cache.put(digest, credential, retires_at)
        warnings.serving(credential.regions)
        return Caller("agency", credential.agency)

    return authenticate


def checked_client_id(client_id: str) -> str:
    if not client_id or len(client_id) > 48:
        raise InvalidInput("client_id", "required: a client's id (doudi admin agency list)")
    return client_id


def client_message(
    client: agency_keys.Client, stored: list[common_keys.StoredKey]
) -> datashare_pb2.AgencyClient:
    return datashare_pb2.AgencyClient(
        client_id=client.client_id,
        agency=client.agency,
        regions=client.regions,
        label=client.label,
        create_time=to_timestamp(client.created_at),
        keys=[
            datashare_pb2.AgencyKeyInfo(
                fingerprint=key.fingerprint,
                create_time=to_timestamp(key.created_at),
                retire_time=None if key.retires_at is None else to_timestamp(key.retires_at),
            )
            for key in stored
        ],
    )


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        assistance = outbox.open_channel(stack, settings.assistance_address, settings)
        delivery = start_deliveries(stack, engine, settings, assistance)
        sweep = asyncio.create_task(
            _abandon_stale_rosters(engine, settings.roster_stream_max_seconds),
            name="abandoning stale roster streams",
        )
        stack.callback(sweep.cancel)
        registry = await asyncio.to_thread(PackRegistry.load)
        # --- dual early warning: decisions go back to assistance ---
        decisions = outbox.start(stack, decision_sender(engine, settings, assistance))
        # --- the console's accounts ---
        dummy_hash = await asyncio.to_thread(console_users.hash_password, secrets.token_urlsafe(24))
        key_cache: common_keys.KeyCache[AgencyKey] = common_keys.KeyCache(
            settings.agency_key_cache_seconds
        )
        servicer = DatashareServicer(
            engine,
            delivery,
            registry.regions,
            settings.roster_revocation_limit_percent,
            decisions=decisions,
            dummy_hash=dummy_hash,
            lockout_attempts=settings.console_lockout_attempts,
            lockout=timedelta(minutes=settings.console_lockout_minutes),
            key_cache=key_cache,
        )

        def register(server: grpc.aio.Server) -> None:
            datashare_pb2_grpc.add_DatashareServiceServicer_to_server(servicer, server)

        if settings.agency_keys:  # local only: doudi run's demo keys
            await write_in_thread(
                engine,
                agency_keys.seed,
                given=settings.agency_credentials,
                now=datetime.now(UTC),
            )
        return register, chain(
            internal_authenticator(settings),
            agency_authenticator(engine, key_cache),
        )

    return build


def main() -> None:
    run_service(SPEC, Settings, setup)
