"""The assistance service's gRPC server: ``python -m services.assistance``."""

from __future__ import annotations

import asyncio
import contextlib
import re
from collections.abc import Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy

from doudi import __version__
from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.common.db import read_in_thread, write_in_thread
from doudi.common.enums import (
    ASSISTANCE_AGENCIES,
    ASSISTANCE_STATUSES,
    ASSISTANCE_VISIT_TYPES,
    SETTLEMENT_EVENT_KINDS,
)
from doudi.common.grpc_server import (
    Authenticator,
    Registrar,
    ServiceSpec,
    Setup,
    internal_authenticator,
    require,
    run_service,
)
from doudi.common.migrations import current_revision
from doudi.common.outbox import received_batch, received_period, received_person
from doudi.common.paging import page_size
from doudi.common.protos import from_date, optional_date, to_date, to_timestamp
from doudi.core.dates import check_year
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.core.money import MAX_BILL_FEN
from doudi.core.names import check_visible
from doudi.core.packs import PackRegistry
from doudi.core.statuses import EffectivePeriod
from services.assistance import people, secondary, service
from services.assistance.settings import DEFAULT_PORT, Settings

SPEC = ServiceSpec(
    name="assistance",
    service_name="doudi.assistance.v1.AssistanceService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)


class AssistanceServicer(assistance_pb2_grpc.AssistanceServiceServicer):
    def __init__(self, engine: sqlalchemy.Engine, packs: PackRegistry) -> None:
        self.engine = engine
        self.packs = packs

    async def GetServiceInfo(
        self,
        request: assistance_pb2.GetServiceInfoRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetServiceInfoResponse:
        require("internal")
        revision = await asyncio.to_thread(current_revision, self.engine)
        return assistance_pb2.GetServiceInfoResponse(
            schema_revision=revision or "", version=__version__
        )

    async def RecordSettlementEvents(
        self,
        request: assistance_pb2.RecordSettlementEventsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.RecordSettlementEventsResponse:
        require("internal")
        if len(request.events) > service.MAX_EVENTS:
            raise InvalidInput("events", f"at most {service.MAX_EVENTS} events per call")
        events = [
            settlement_event(event, f"events[{index}]")
            for index, event in enumerate(request.events)
        ]
        recorded = await write_in_thread(
            self.engine, service.record_settlement_events, events=events
        )
        return assistance_pb2.RecordSettlementEventsResponse(recorded_count=recorded)

    async def GetBurden(
        self,
        request: assistance_pb2.GetBurdenRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetBurdenResponse:
        require("internal")
        person_id = read_resident_id(request.person_id, "person_id").number
        check_year(request.year, "year")
        found = await read_in_thread(
            self.engine, service.get_persons_year, person_id=person_id, year=request.year
        )
        burden = found.burden
        return assistance_pb2.GetBurdenResponse(
            burden=assistance_pb2.Burden(
                person_id=burden.person_id,
                year=burden.year,
                total_fen=burden.total_fen,
                fund_paid_fen=burden.fund_paid_fen,
                personal_burden_fen=burden.personal_burden_fen,
                eligible_burden_fen=burden.eligible_burden_fen,
                fund_payments=[
                    assistance_pb2.FundPayment(fund=fund, paid_fen=fen)
                    for fund, fen in burden.fund_payments
                ],
                **{f"{kind}_visits": count for kind, count in burden.visits.items()},
            ),
            household_id=found.household_id,
            household_burden_fen=found.household_burden_fen,
            household_eligible_burden_fen=found.household_eligible_burden_fen,
            members=[
                assistance_pb2.HouseholdMember(
                    person_id=member.person_id,
                    name=member.name,
                    personal_burden_fen=member.personal_burden_fen,
                    eligible_burden_fen=member.eligible_burden_fen,
                )
                for member in found.members
            ],
            statuses=[status_period_message(period) for period in found.statuses],
        )

    # --- the copies of persons and statuses -----------------------------------------

    async def RecordPersons(
        self,
        request: assistance_pb2.RecordPersonsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.RecordPersonsResponse:
        require("internal")
        persons = [
            people.InsuredPerson(
                person_id=received_person(person.person_id, person.version, where),
                version=person.version,
                name=_text(person.name, f"{where}.name"),
                household_id=_text(person.household_id, f"{where}.household_id"),
                region=_code(person.region, f"{where}.region"),
                years=_years(person.years, where),
            )
            for where, person in received_batch(request.persons)
        ]
        versions = await write_in_thread(
            self.engine, people.record_persons, persons=persons, now=datetime.now(UTC)
        )
        return assistance_pb2.RecordPersonsResponse(versions=versions)

    async def RecordPersonStatuses(
        self,
        request: assistance_pb2.RecordPersonStatusesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.RecordPersonStatusesResponse:
        require("internal")
        persons = [
            people.HeldStatuses(
                received_person(person.person_id, person.version, where),
                person.version,
                tuple(
                    received_period(
                        period,
                        f"{where}.periods[{index}]",
                        ASSISTANCE_STATUSES,
                        ASSISTANCE_AGENCIES,
                    )
                    for index, period in enumerate(person.periods)
                ),
            )
            for where, person in received_batch(request.persons)
        ]
        versions = await write_in_thread(
            self.engine, people.record_statuses, persons=persons, now=datetime.now(UTC)
        )
        return assistance_pb2.RecordPersonStatusesResponse(versions=versions)

    # --- secondary assistance ---

    async def CreateSecondaryRun(
        self,
        request: assistance_pb2.CreateSecondaryRunRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.CreateSecondaryRunResponse:
        require("internal")
        asked = secondary_run_request(request)
        try:
            run = await write_in_thread(
                self.engine,
                secondary.create_run,
                packs=self.packs,
                request=asked,
                now=datetime.now(UTC),
            )
        except sqlalchemy.exc.IntegrityError:
            # Another call with the same request id stored its run a moment before.
            run = await read_in_thread(self.engine, secondary.find_run_by_request, request=asked)
        return assistance_pb2.CreateSecondaryRunResponse(run=secondary_run_message(run))

    async def GetSecondaryRun(
        self,
        request: assistance_pb2.GetSecondaryRunRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetSecondaryRunResponse:
        require("internal")
        run = await read_in_thread(self.engine, secondary.get_run, run_id=_run_id(request.run_id))
        return assistance_pb2.GetSecondaryRunResponse(run=secondary_run_message(run))

    async def ListSecondaryRuns(
        self,
        request: assistance_pb2.ListSecondaryRunsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ListSecondaryRunsResponse:
        require("internal")
        region = _region(request.region) if request.region else None
        if request.year:
            check_year(request.year, "year")
        runs, token = await read_in_thread(
            self.engine,
            secondary.list_runs,
            region=region,
            year=request.year or None,
            page_size=page_size(request.page_size),
            page_token=request.page_token,
        )
        return assistance_pb2.ListSecondaryRunsResponse(
            runs=[secondary_run_message(run) for run in runs], next_page_token=token
        )

    async def ListSecondaryRunEntries(
        self,
        request: assistance_pb2.ListSecondaryRunEntriesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ListSecondaryRunEntriesResponse:
        require("internal")
        entries, token = await read_in_thread(
            self.engine,
            secondary.list_entries,
            run_id=_run_id(request.run_id),
            paid_only=request.paid_only,
            page_size=page_size(request.page_size),
            page_token=request.page_token,
        )
        return assistance_pb2.ListSecondaryRunEntriesResponse(
            entries=[
                assistance_pb2.SecondaryRunEntry(
                    run_id=entry.run_id,
                    person_id=entry.person_id,
                    name=entry.name,
                    policy=entry.policy,
                    eligible_burden_fen=entry.eligible_burden_fen,
                    threshold_fen=entry.threshold_fen,
                    share_basis_points=entry.share_basis_points,
                    yearly_cap_fen=entry.yearly_cap_fen,
                    owed_fen=entry.owed_fen,
                    paid_before_fen=entry.paid_before_fen,
                    to_pay_fen=entry.to_pay_fen,
                    flagged=entry.flagged,
                    reason=entry.reason,
                    paid_fen=entry.paid_fen,
                )
                for entry in entries
            ],
            next_page_token=token,
        )

    async def ApproveSecondaryRun(
        self,
        request: assistance_pb2.ApproveSecondaryRunRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ApproveSecondaryRunResponse:
        require("internal")
        run_id = _run_id(request.run_id)
        approver = _person_name(request.approver, "approver")
        run = await write_in_thread(
            self.engine,
            secondary.approve_run,
            run_id=run_id,
            approver=approver,
            now=datetime.now(UTC),
        )
        return assistance_pb2.ApproveSecondaryRunResponse(run=secondary_run_message(run))

    # --- end of secondary assistance ---


def status_period_message(period: EffectivePeriod) -> assistance_pb2.StatusPeriod:
    message = assistance_pb2.StatusPeriod(
        status=ASSISTANCE_STATUSES.value(period.status),
        valid_from=from_date(period.valid_from),
        agency=ASSISTANCE_AGENCIES.value(period.agency),
    )
    if period.valid_to is not None:
        message.valid_to.CopyFrom(from_date(period.valid_to))
    return message


def _years(years: Sequence[int], where: str) -> tuple[int, ...]:
    for index, year in enumerate(years):
        check_year(year, f"{where}.years[{index}]")
    return tuple(years)


def _text(value: str, field: str, limit: int = 64) -> str:
    """A name or household id: required, at most ``limit`` characters, nothing hidden."""
    if not value.strip():
        raise InvalidInput(field, "required")
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters, got {len(value)}")
    check_visible(value, field)
    return value


def _fen(value: int, field: str) -> int:
    if not 0 <= value <= MAX_BILL_FEN:
        raise InvalidInput(field, f"from 0 to {MAX_BILL_FEN} fen, got {value}")
    return value


def _code(text: str, field: str, limit: int = 32) -> str:
    if not text or len(text) > limit or not text.isprintable():
        raise InvalidInput(field, f"required: a code of at most {limit} printable characters")
    return text


def settlement_event(
    message: assistance_pb2.SettlementEvent, where: str
) -> service.SettlementEvent:
    """An event as sent, checked: InvalidInput names ``where`` and the field at fault."""
    if message.event_id < 1:
        raise InvalidInput(f"{where}.event_id", "required: a positive id")
    total = _fen(message.total_fen, f"{where}.total_fen")
    in_scope = _fen(message.in_scope_fen, f"{where}.in_scope_fen")
    out_of_scope = _fen(message.out_of_scope_fen, f"{where}.out_of_scope_fen")
    if in_scope + out_of_scope != total:
        raise InvalidInput(
            f"{where}.total_fen", "must be in_scope_fen + out_of_scope_fen, to the fen"
        )
    payments = tuple(
        (
            _code(payment.layer, f"{where}.payments[{index}].layer", 64),
            _code(payment.fund, f"{where}.payments[{index}].fund"),
            _fen(payment.paid_fen, f"{where}.payments[{index}].paid_fen"),
        )
        for index, payment in enumerate(message.payments)
    )
    self_pay = _fen(message.self_pay_fen, f"{where}.self_pay_fen")
    if sum(fen for _layer, _fund, fen in payments) + self_pay != total:
        raise InvalidInput(
            f"{where}.total_fen", "must be the payments and self_pay_fen together, to the fen"
        )
    settled_on = to_date(message.settled_on, f"{where}.settled_on")
    check_year(settled_on.year, f"{where}.settled_on")
    return service.SettlementEvent(
        event_id=message.event_id,
        kind=SETTLEMENT_EVENT_KINDS.code(message.kind, f"{where}.kind"),
        settlement_id=_code(message.settlement_id, f"{where}.settlement_id", 64),
        person_id=read_resident_id(message.person_id, f"{where}.person_id").number,
        region=_code(message.region, f"{where}.region"),
        visit_type=ASSISTANCE_VISIT_TYPES.code(message.visit_type, f"{where}.visit_type"),
        admitted=optional_date(message, "admitted", f"{where}.admitted"),
        settled_on=settled_on,
        total_fen=total,
        in_scope_fen=in_scope,
        out_of_scope_fen=out_of_scope,
        payments=payments,
        self_pay_fen=self_pay,
        statuses=tuple(
            ASSISTANCE_STATUSES.code(status, f"{where}.statuses[{index}]")
            for index, status in enumerate(message.statuses)
        ),
        policy=_code(message.policy, f"{where}.policy", 64),
    )


# --- secondary assistance ---

_REGION = re.compile(r"[0-9]{6}")
MAX_REQUEST_ID_LENGTH = 128


def _region(text: str) -> str:
    if not _REGION.fullmatch(text):
        raise InvalidInput("region", f"required: a 6-digit region code, got {text!r}")
    return text


def _run_id(value: int) -> int:
    if value < 1:
        raise InvalidInput("run_id", "required: a positive run id")
    return value


def _person_name(text: str, field: str) -> str:
    text = text.strip()
    if not text or len(text) > 64 or not text.isprintable():
        raise InvalidInput(field, "required: who it is, at most 64 printable characters")
    return text


def secondary_run_request(
    request: assistance_pb2.CreateSecondaryRunRequest,
) -> secondary.RunRequest:
    """The run asked for, checked: InvalidInput names the field at fault."""
    request_id = request.request_id
    if not request_id or len(request_id) > MAX_REQUEST_ID_LENGTH or not request_id.isprintable():
        raise InvalidInput(
            "request_id",
            f"required: an idempotency key of 1 to {MAX_REQUEST_ID_LENGTH} printable characters",
        )
    region = _region(request.region)
    check_year(request.year, "year")
    through = to_date(request.through, "through")
    if through.year != request.year:
        raise InvalidInput("through", f"must be a day of {request.year}, got {through}")
    return secondary.RunRequest(
        request_id=request_id,
        region=region,
        year=request.year,
        through=through,
        case_worker=_person_name(request.case_worker, "case_worker"),
    )


def secondary_run_message(run: secondary.Run) -> assistance_pb2.SecondaryRun:
    message = assistance_pb2.SecondaryRun(
        run_id=run.run_id,
        region=run.region,
        year=run.year,
        through=from_date(run.through),
        case_worker=run.case_worker,
        create_time=to_timestamp(run.created_at),
        approver=run.approver or "",
        entry_count=run.entry_count,
        payable_count=run.payable_count,
        to_pay_fen=run.to_pay_fen,
        flagged_count=run.flagged_count,
        paid_count=run.paid_count,
        paid_fen=run.paid_fen,
        unjudged_policies=run.unjudged_policies,
    )
    if run.approved_at is not None:
        message.approve_time.CopyFrom(to_timestamp(run.approved_at))
    return message


# --- end of secondary assistance ---


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, _stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        packs = await asyncio.to_thread(PackRegistry.load)
        servicer = AssistanceServicer(engine, packs)

        def register(server: grpc.aio.Server) -> None:
            assistance_pb2_grpc.add_AssistanceServiceServicer_to_server(servicer, server)

        return register, internal_authenticator(settings)

    return build


def main() -> None:
    settings = Settings()
    run_service(SPEC, settings, setup(settings))
