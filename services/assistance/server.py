"""The assistance service's gRPC server: ``python -m services.assistance``."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import grpc
import sqlalchemy

from doudi import __version__
from doudi.assistance.v1 import assistance_pb2, assistance_pb2_grpc
from doudi.common import outbox
from doudi.common import warnings as common_warnings
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
from doudi.common.outbox import Sender, received_batch, received_period, received_person
from doudi.common.protos import from_date, optional_date, to_date
from doudi.core.dates import check_year
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id
from doudi.core.money import MAX_BILL_FEN
from doudi.core.names import check_visible
from doudi.core.statuses import EffectivePeriod
from services.assistance import people, service, warnings
from services.assistance.settings import DEFAULT_PORT, Settings
from services.assistance.warning_delivery import warning_sender

SPEC = ServiceSpec(
    name="assistance",
    service_name="doudi.assistance.v1.AssistanceService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)


class AssistanceServicer(assistance_pb2_grpc.AssistanceServiceServicer):
    def __init__(self, engine: sqlalchemy.Engine, warning_sender: Sender) -> None:
        self.engine = engine
        self.warning_sender = warning_sender

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
        if recorded:
            self.warning_sender.wake()  # a warning it raised goes to the hub now
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

    # --- dual early warning ---------------------------------------------------------

    async def ListWarnings(
        self,
        request: assistance_pb2.ListWarningsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ListWarningsResponse:
        require("internal")
        region = _code(request.region, "region")
        check_year(request.year, "year")
        on = common_warnings.as_of(request)
        found, token = await read_in_thread(
            self.engine,
            warnings.list_warnings,
            region=region,
            year=request.year,
            **common_warnings.listing_filters(common_warnings.ASSISTANCE, request),
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return assistance_pb2.ListWarningsResponse(
            warnings=[_warning_message(warning, on) for warning in found],
            next_page_token=token,
        )

    async def GetWarning(
        self,
        request: assistance_pb2.GetWarningRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetWarningResponse:
        require("internal")
        if request.warning_id < 1:
            raise InvalidInput("warning_id", "required: a positive id")
        found = await read_in_thread(
            self.engine, warnings.get_warning, warning_id=request.warning_id
        )
        return assistance_pb2.GetWarningResponse(
            warning=_warning_message(found, common_warnings.as_of(request))
        )

    async def RecordWarningDecisions(
        self,
        request: assistance_pb2.RecordWarningDecisionsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.RecordWarningDecisionsResponse:
        require("internal")
        if not request.decisions:
            raise InvalidInput("decisions", "required: at least one decision")
        if len(request.decisions) > common_warnings.MAX_BATCH:
            raise InvalidInput("decisions", f"at most {common_warnings.MAX_BATCH} per call")
        decisions = [
            common_warnings.received_decision(
                common_warnings.ASSISTANCE, decision, f"decisions[{index}]"
            )
            for index, decision in enumerate(request.decisions)
        ]
        versions = await write_in_thread(
            self.engine, warnings.record_decisions, decisions=decisions
        )
        return assistance_pb2.RecordWarningDecisionsResponse(versions=versions)


def _warning_message(warning: common_warnings.Warning, on: date) -> assistance_pb2.Warning:
    message: assistance_pb2.Warning = common_warnings.warning_message(
        common_warnings.ASSISTANCE, warning, on
    )
    return message


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
            _code(payment.fund, f"{where}.payments[{index}].fund", 16),
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


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        datashare = outbox.open_channel(stack, settings.datashare_address)
        sender = outbox.start(stack, warning_sender(engine, settings, datashare))
        await asyncio.to_thread(warnings.packs)  # loaded before the first settlement
        servicer = AssistanceServicer(engine, sender)

        def register(server: grpc.aio.Server) -> None:
            assistance_pb2_grpc.add_AssistanceServiceServicer_to_server(servicer, server)

        return register, internal_authenticator(settings)

    return build


def main() -> None:
    settings = Settings()
    run_service(SPEC, settings, setup(settings))
