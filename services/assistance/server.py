"""The assistance service's gRPC server: ``python -m services.assistance``."""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import grpc
import orjson
import sqlalchemy
import yaml
from google.type import date_pb2

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
from doudi.common.paging import page_size
from doudi.common.protos import EnumCodes, from_date, to_date, to_timestamp
from doudi.common.visits import assistance_visit_from_proto, assistance_visit_to_proto
from doudi.core.codes import HOSPITAL_LEVELS
from doudi.core.dates import check_year
from doudi.core.errors import InvalidInput
from doudi.core.identity import read_resident_id, resident_id_number
from doudi.core.money import MAX_BILL_FEN
from doudi.core.names import check_visible
from doudi.core.packs import PackRegistry
from doudi.core.statuses import EffectivePeriod
from doudi.core.workdays import WorkingCalendar
from doudi.settlement.v1 import settlement_pb2_grpc
from services.assistance import (
    applications,
    bills,
    people,
    reports,
    screening,
    screening_calls,
    secondary,
    service,
    warnings,
)
from services.assistance.certifying import certification_sender
from services.assistance.settings import DEFAULT_PORT, Settings
from services.assistance.warning_delivery import warning_sender

SPEC = ServiceSpec(
    name="assistance",
    service_name="doudi.assistance.v1.AssistanceService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)


class AssistanceServicer(assistance_pb2_grpc.AssistanceServiceServicer):
    def __init__(
        self,
        engine: sqlalchemy.Engine,
        *,
        registry: PackRegistry,
        calendar: WorkingCalendar,
        time_zone: ZoneInfo,
        regions: frozenset[str],
        certifying: Sender,
        warning_sender: Sender,
        settlement: settlement_pb2_grpc.SettlementServiceAsyncStub | None = None,
        internal: tuple[tuple[str, str], ...] = (),
    ) -> None:
        self.engine = engine
        self.registry = registry
        # applications
        self.calendar = calendar
        self.time_zone = time_zone
        self.regions = regions
        self.certifying = certifying
        # dual early warning
        self.warning_sender = warning_sender
        # proactive screening: settlement recomputes the settled visits
        self.settlement = settlement
        self.internal = internal

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
            settlement_event(event, f"events[{index}]", _CHECKED_PERSONS)
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
        enrolments = [
            _enrolments(person.enrolments, f"persons[{index}]")
            for index, person in enumerate(request.persons)
        ]
        versions = await write_in_thread(
            self.engine,
            reports.record_persons,
            persons=persons,
            enrolments=enrolments,
            now=datetime.now(UTC),
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

    # --- bills paid outside the window -------------------------------------------------

    async def RecordBill(
        self,
        request: assistance_pb2.RecordBillRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.RecordBillResponse:
        require("internal")
        given = request.bill
        try:
            checked = bill_from_message(given, self.registry)
        except InvalidInput as error:
            raise error.under("bill") from None
        done = await write_in_thread(
            self.engine, bills.record_bill, bill=checked, now=datetime.now(UTC)
        )
        if done.recorded:
            self.warning_sender.wake()  # a warning the bill raised goes to the hub now
        return assistance_pb2.RecordBillResponse(
            bill=bill_message(done.stored),
            recorded=done.recorded,
            person_on_record=done.person_on_record,
        )

    async def ListBills(
        self,
        request: assistance_pb2.ListBillsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ListBillsResponse:
        require("internal")
        person_id = region = year = None
        if request.person_id:
            person_id = read_resident_id(request.person_id, "person_id").number
            if request.region:
                raise InvalidInput("region", "give a person or a region, not both")
        elif request.region:
            region = _code(request.region, "region")
        else:
            raise InvalidInput("person_id", "required: a person, or a region and a year")
        if request.year or region is not None:
            year = request.year
            check_year(year, "year")
        found, token = await read_in_thread(
            self.engine,
            bills.list_bills,
            person_id=person_id,
            region=region,
            year=year,
            size=request.page_size,
            token=request.page_token,
        )
        return assistance_pb2.ListBillsResponse(
            bills=[bill_message(bill) for bill in found], next_page_token=token
        )

    # --- applications (依申请救助; services/assistance/applications.py) ---------------------

    def _today(self) -> applications.Today:
        return applications.Today(self.calendar, datetime.now(self.time_zone).date())

    async def AcceptApplication(
        self,
        request: assistance_pb2.AcceptApplicationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.AcceptApplicationResponse:
        require("internal")
        today = self._today()
        checked = new_application(request, self.regions, today.day)
        application, replayed = await write_in_thread(
            self.engine, applications.accept, application=checked, today=today
        )
        return assistance_pb2.AcceptApplicationResponse(
            application=application_message(application), replayed=replayed
        )

    async def GetApplication(
        self,
        request: assistance_pb2.GetApplicationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetApplicationResponse:
        require("internal")
        application = await read_in_thread(
            self.engine,
            applications.get,
            application_id=_application_id(request.application_id),
            today=self._today(),
        )
        return assistance_pb2.GetApplicationResponse(application=application_message(application))

    async def ListApplications(
        self,
        request: assistance_pb2.ListApplicationsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ListApplicationsResponse:
        require("internal")
        found, token = await read_in_thread(
            self.engine,
            applications.list_applications,
            region=request.region or None,
            person_id=_optional_person(request.person_id),
            state=APPLICATION_STATES.optional_code(request.state, "state"),
            kind=APPLICATION_KINDS.optional_code(request.kind, "kind"),
            overdue_only=request.overdue_only,
            page_size=request.page_size,
            page_token=request.page_token,
            today=self._today(),
        )
        return assistance_pb2.ListApplicationsResponse(
            applications=[application_message(item) for item in found], next_page_token=token
        )

    async def DecideApplication(
        self,
        request: assistance_pb2.DecideApplicationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.DecideApplicationResponse:
        require("internal")
        today = self._today()
        application_id = _application_id(request.application_id)
        decision = application_decision(request, today.day)
        application = await write_in_thread(
            self.engine,
            applications.decide,
            application_id=application_id,
            decision=decision,
            today=today,
        )
        # The hub has the status before the case worker is answered, or the sender's loop
        # sends it once the hub answers again.
        if application.status_valid_from is not None and await self.certifying.send_now(
            [application.person_id]
        ):
            application = await read_in_thread(
                self.engine, applications.get, application_id=application_id, today=today
            )
        return assistance_pb2.DecideApplicationResponse(
            application=application_message(application)
        )

    async def SupplyDocument(
        self,
        request: assistance_pb2.SupplyDocumentRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.SupplyDocumentResponse:
        require("internal")
        today = self._today()
        application = await write_in_thread(
            self.engine,
            applications.supply,
            application_id=_application_id(request.application_id),
            name=_text(request.name, "name", 100),
            supplied_on=_past_day(request, "supplied_on", today.day),
            today=today,
        )
        return assistance_pb2.SupplyDocumentResponse(application=application_message(application))

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
                packs=self.registry,
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
        # A person's entries: of the run if one is given, else of every run.
        person_id = _optional_person(request.person_id)
        run_id = _run_id(request.run_id) if request.run_id or person_id is None else None
        entries, token = await read_in_thread(
            self.engine,
            secondary.list_entries,
            run_id=run_id,
            person_id=person_id,
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
        approver = _text(request.approver, "approver")
        run = await write_in_thread(
            self.engine,
            secondary.approve_run,
            run_id=run_id,
            approver=approver,
            now=datetime.now(UTC),
        )
        return assistance_pb2.ApproveSecondaryRunResponse(run=secondary_run_message(run))

    # --- end of secondary assistance ---

    # --- proactive screening ---

    async def RunScreening(
        self,
        request: assistance_pb2.RunScreeningRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.RunScreeningResponse:
        require("internal")
        asked = screening_run_request(request, self.regions)
        plan = await read_in_thread(
            self.engine, screening.to_screen, packs=self.registry, request=asked
        )
        if plan.stored is not None:
            return assistance_pb2.RunScreeningResponse(run=screening_run_message(plan.stored))
        found: list[screening.Finding] = []
        if plan.person_ids:
            assert self.settlement is not None
            found = await screening_calls.findings(
                self.settlement, self.internal, plan.person_ids, asked.year, SCREEN_TIMEOUT_SECONDS
            )
        try:
            run = await write_in_thread(
                self.engine,
                screening.create_run,
                packs=self.registry,
                request=asked,
                screened=plan,
                findings=found,
                now=datetime.now(UTC),
            )
        except sqlalchemy.exc.IntegrityError:
            # Another call with the same request id stored its run a moment before.
            run = await read_in_thread(self.engine, screening.find_run_by_request, request=asked)
        return assistance_pb2.RunScreeningResponse(run=screening_run_message(run))

    async def GetScreeningRun(
        self,
        request: assistance_pb2.GetScreeningRunRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetScreeningRunResponse:
        require("internal")
        run = await read_in_thread(self.engine, screening.get_run, run_id=_run_id(request.run_id))
        return assistance_pb2.GetScreeningRunResponse(run=screening_run_message(run))

    async def ListScreeningRuns(
        self,
        request: assistance_pb2.ListScreeningRunsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ListScreeningRunsResponse:
        require("internal")
        region = _region(request.region) if request.region else None
        if request.year:
            check_year(request.year, "year")
        runs, token = await read_in_thread(
            self.engine,
            screening.list_runs,
            region=region,
            year=request.year or None,
            page_size=page_size(request.page_size),
            page_token=request.page_token,
        )
        return assistance_pb2.ListScreeningRunsResponse(
            runs=[screening_run_message(run) for run in runs], next_page_token=token
        )

    async def ListScreeningOffers(
        self,
        request: assistance_pb2.ListScreeningOffersRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ListScreeningOffersResponse:
        require("internal")
        person_id = _optional_person(request.person_id)
        run_id = region = year = None
        if request.run_id:
            run_id = _run_id(request.run_id)
        else:
            region, year = _region_and_year(request, person_id is None, _region)
        states = [
            OFFER_STATES.code(state, f"states[{index}]")
            for index, state in enumerate(request.states)
        ]
        offers, token = await read_in_thread(
            self.engine,
            screening.list_offers,
            run_id=run_id,
            person_id=person_id,
            region=region,
            year=year,
            states=states,
            page_size=page_size(request.page_size),
            page_token=request.page_token,
        )
        return assistance_pb2.ListScreeningOffersResponse(
            offers=[screening_offer_message(offer) for offer in offers], next_page_token=token
        )

    async def GetScreeningOffer(
        self,
        request: assistance_pb2.GetScreeningOfferRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetScreeningOfferResponse:
        require("internal")
        offer = await read_in_thread(
            self.engine, screening.get_offer, offer_id=_offer_id(request.offer_id)
        )
        return assistance_pb2.GetScreeningOfferResponse(offer=screening_offer_message(offer))

    async def ConfirmScreeningOffer(
        self,
        request: assistance_pb2.ConfirmScreeningOfferRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ConfirmScreeningOfferResponse:
        require("internal")
        offer_id = _offer_id(request.offer_id)
        case_worker = _text(request.case_worker, "case_worker")
        note = _text(request.note, "note", 500)
        offer = await write_in_thread(
            self.engine,
            screening.confirm_offer,
            offer_id=offer_id,
            case_worker=case_worker,
            note=note,
            now=datetime.now(UTC),
        )
        return assistance_pb2.ConfirmScreeningOfferResponse(offer=screening_offer_message(offer))

    # --- end of proactive screening ---

    # --- dual early warning ---------------------------------------------------------

    async def ListWarnings(
        self,
        request: assistance_pb2.ListWarningsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.ListWarningsResponse:
        require("internal")
        household_id = None
        if request.household_id:
            household_id = _code(request.household_id, "household_id", 64)
        region, year = _region_and_year(
            request, household_id is None, lambda text: _code(text, "region")
        )
        on = common_warnings.as_of(request)
        found, token = await read_in_thread(
            self.engine,
            warnings.list_warnings,
            region=region,
            year=year,
            household_id=household_id,
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

    # --- reports ---------------------------------------------------------------------

    async def GetReport(
        self,
        request: assistance_pb2.GetReportRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> assistance_pb2.GetReportResponse:
        require("internal")
        region = _region(request.region)
        if region not in self.registry.regions:
            known = ", ".join(sorted(self.registry.regions))
            raise InvalidInput("region", f"no pack for region {region} (one of {known})")
        check_year(request.year, "year")
        if not 0 <= request.month <= 12:
            raise InvalidInput("month", f"1 to 12, or 0 for the whole year; got {request.month}")
        if request.monthly and request.month:
            raise InvalidInput("monthly", "only for the whole year (month 0)")
        report = await read_in_thread(
            self.engine,
            reports.get_report,
            region=region,
            year=request.year,
            month=request.month,
            as_of=common_warnings.as_of(request),
            registry=self.registry,
            calendar=self.calendar,
            monthly=request.monthly,
        )
        return assistance_pb2.GetReportResponse(
            region=report.region,
            year=report.year,
            month=report.month,
            as_of=from_date(report.as_of),
            rows=report_rows(report),
            months=[
                assistance_pb2.MonthReport(
                    month=month.month, as_of=from_date(month.as_of), rows=report_rows(month)
                )
                for month in report.months
            ],
        )


def report_rows(report: reports.Report) -> list[assistance_pb2.ReportRow]:
    return [
        assistance_pb2.ReportRow(
            figure=row.figure,
            category=row.category,
            category_name=row.category_name,
            visit_type=ASSISTANCE_VISIT_TYPES.value(row.visit_type or None),
            fund=row.fund,
            unit=row.unit,
            month=row.month,
            year_to_date=row.year_to_date,
        )
        for row in report.rows
    ]


def bill_from_message(message: assistance_pb2.Bill, registry: PackRegistry) -> bills.Bill:
    """A bill as sent, checked: InvalidInput names the field at fault."""
    person_id = read_resident_id(message.person_id, "person_id").number
    level = message.hospital_level
    if level and level not in HOSPITAL_LEVELS:
        raise InvalidInput("hospital_level", f"must be 1, 2 or 3, got {level}")
    return bills.checked_bill(
        registry=registry,
        request_id=message.request_id,
        person_id=person_id,
        region=message.region,
        hospital_name=message.hospital_name,
        visit=assistance_visit_from_proto(message.visit, hospital_level=level or None),
        insurance_payments=[(p.fund, p.paid_fen) for p in message.insurance_payments],
        self_pay_fen=message.self_pay_fen,
    )


def bill_message(stored: bills.StoredBill) -> assistance_pb2.Bill:
    bill = stored.bill
    return assistance_pb2.Bill(
        bill_id=stored.bill_id,
        request_id=bill.request_id,
        person_id=bill.person_id,
        region=bill.region,
        hospital_name=bill.hospital_name,
        hospital_level=bill.visit.hospital_level or 0,
        visit=assistance_visit_to_proto(bill.visit),
        insurance_payments=[
            assistance_pb2.BillPayment(fund=fund, paid_fen=fen)
            for fund, fen in bill.insurance_payments
        ],
        self_pay_fen=bill.self_pay_fen,
        total_fen=bill.total_fen,
        out_of_scope_fen=bill.out_of_scope_fen,
        eligible_burden_fen=bill.eligible_burden_fen,
        record_time=to_timestamp(stored.recorded_at),
    )


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


def _enrolments(
    messages: Sequence[assistance_pb2.Enrolment], where: str
) -> tuple[reports.Enrolment, ...]:
    """A person's enrolments as enrollment sent them, checked."""
    checked = []
    for index, message in enumerate(messages):
        field = f"{where}.enrolments[{index}]"
        check_year(message.year, f"{field}.year")
        premium = _fen(message.premium_fen, f"{field}.premium_fen")
        if not 0 <= message.subsidy_fen <= premium:
            raise InvalidInput(
                f"{field}.subsidy_fen",
                f"from 0 to the premium ({premium}), got {message.subsidy_fen}",
            )
        category = message.subsidy_category
        checked.append(
            reports.Enrolment(
                year=message.year,
                premium_fen=premium,
                subsidy_fen=message.subsidy_fen,
                subsidy_category=_code(category, f"{field}.subsidy_category") if category else None,
                enrolled_at=_moment(message.enrolled_at, f"{field}.enrolled_at")
                if message.HasField("enrolled_at")
                else None,
            )
        )
    return tuple(checked)


def _moment(stamp: Any, field: str) -> datetime:
    try:
        return stamp.ToDatetime(UTC)  # type: ignore[no-any-return]
    except (ValueError, OverflowError):
        raise InvalidInput(field, "not a moment a calendar holds") from None


def _years(years: Sequence[int], where: str) -> tuple[int, ...]:
    for index, year in enumerate(years):
        check_year(year, f"{where}.years[{index}]")
    return tuple(years)


def _fen(value: int, field: str) -> int:
    if not 0 <= value <= MAX_BILL_FEN:
        raise InvalidInput(field, f"from 0 to {MAX_BILL_FEN} fen, got {value}")
    return value


def _code(text: str, field: str, limit: int = 32) -> str:
    if not text or len(text) > limit or not text.isprintable():
        raise InvalidInput(field, f"required: a code of at most {limit} printable characters")
    return text


def settlement_event(
    message: assistance_pb2.SettlementEvent, where: str, persons: dict[str, str] | None = None
) -> service.SettlementEvent:
    """An event as sent, checked, as its row: InvalidInput names ``where`` and the field at
    fault. ``persons`` keeps the identity numbers checked already (as sent: as read).

    Each field is read from the message once and a field's name is written only for an
    error: the intake checks a million events a year (docs/performance.md)."""
    event_id = message.event_id
    if event_id < 1:
        raise InvalidInput(f"{where}.event_id", "required: a positive id")
    total = message.total_fen
    in_scope = message.in_scope_fen
    out_of_scope = message.out_of_scope_fen
    self_pay = message.self_pay_fen
    for name, fen in (
        ("total_fen", total),
        ("in_scope_fen", in_scope),
        ("out_of_scope_fen", out_of_scope),
    ):
        _event_fen(fen, where, name)
    if in_scope + out_of_scope != total:
        raise InvalidInput(
            f"{where}.total_fen", "must be in_scope_fen + out_of_scope_fen, to the fen"
        )
    payments = []
    paid = 0
    for index, payment in enumerate(message.payments):
        layer, fund, fen = payment.layer, payment.fund, payment.paid_fen
        _event_code(layer, where, f"payments[{index}].layer", 64)
        _event_code(fund, where, f"payments[{index}].fund")
        _event_fen(fen, where, f"payments[{index}].paid_fen")
        payments.append((layer, fund, fen))
        paid += fen
    _event_fen(self_pay, where, "self_pay_fen")
    if paid + self_pay != total:
        raise InvalidInput(
            f"{where}.total_fen", "must be the payments and self_pay_fen together, to the fen"
        )
    settled_on = _day(message.settled_on, where, "settled_on")
    kind = SETTLEMENT_EVENT_KINDS.code(message.kind, f"{where}.kind")
    settlement_id = _event_code(message.settlement_id, where, "settlement_id", 64)
    person_id = _person_id(message.person_id, f"{where}.person_id", persons)
    region = _event_code(message.region, where, "region")
    visit_type = ASSISTANCE_VISIT_TYPES.code(message.visit_type, f"{where}.visit_type")
    return service.SettlementEvent(
        event_id,
        kind,
        settlement_id,
        person_id,
        region,
        visit_type,
        _day(message.admitted, where, "admitted", check=False)
        if message.HasField("admitted")
        else None,
        settled_on,
        total,
        in_scope,
        out_of_scope,
        paid,
        self_pay,
        orjson.dumps(payments).decode(),
        " ".join(ASSISTANCE_STATUSES.codes(message.statuses, f"{where}.statuses")),
        _event_code(message.policy, where, "policy", 64),
    )


def _event_fen(fen: int, where: str, name: str) -> None:
    """:func:`_fen` of an event's field, its name written only for the error."""
    if not 0 <= fen <= MAX_BILL_FEN:
        _fen(fen, f"{where}.{name}")


def _event_code(text: str, where: str, name: str, limit: int = 32) -> str:
    """:func:`_code` of an event's field, its name written only for the error."""
    if not text or len(text) > limit or not text.isprintable():
        _code(text, f"{where}.{name}", limit)
    return text


_DAYS: dict[tuple[int, int, int], tuple[int, str]] = {}
"""The days read so far, as (year, ISO day): an event's days fall in a few years, read
once each."""


def _day(message: date_pb2.Date, where: str, name: str, *, check: bool = True) -> str:
    """``to_date`` of the event's field in ISO form (``2026-01-31``); with ``check``, also
    ``check_year``."""
    key = (message.year, message.month, message.day)
    found = _DAYS.get(key)
    if found is None:
        day = to_date(message, f"{where}.{name}")
        found = (day.year, day.isoformat())
        if len(_DAYS) < 100_000:
            _DAYS[key] = found
    if check:
        check_year(found[0], f"{where}.{name}")
    return found[1]


def _person_id(text: str, field: str, checked: dict[str, str] | None) -> str:
    """The identity number ``text`` reads as, looked up in ``checked`` first (the check
    digit and the birth date cost more than the rest of an event's checks)."""
    found = None if checked is None else checked.get(text)
    if found is None:
        try:  # the number alone: read_resident_id's birth date and sex are not kept
            found = resident_id_number(text)
        except ValueError as error:
            raise InvalidInput(field, f"invalid identity number: {error}") from None
        if checked is not None and len(checked) < _CHECKED_LIMIT:
            checked[text] = found
    return found


_CHECKED_PERSONS: dict[str, str] = {}
"""The identity numbers the intake has checked (as sent: as read): a region's persons
come back visit after visit, each checked once."""
_CHECKED_LIMIT = 200_000
"""The most numbers :data:`_CHECKED_PERSONS` keeps (about 40 MB); more are checked each time."""


# --- applications: messages to checked values and back ---------------------------------------

APPLICATION_KINDS = EnumCodes(assistance_pb2.ApplicationKind, "APPLICATION_KIND_")
APPLICATION_STATES = EnumCodes(assistance_pb2.ApplicationState, "APPLICATION_STATE_")


def new_application(
    message: assistance_pb2.AcceptApplicationRequest, regions: frozenset[str], today: date
) -> applications.NewApplication:
    """The application as the window sent it, checked: InvalidInput names the field."""
    if message.region not in regions:
        raise InvalidInput(
            "region", f"{message.region!r} is not a pooling region the platform has a pack for"
        )
    accepted_on = _past_day(message, "accepted_on", today)
    documents = [
        _text(name, f"documents_received[{i}]", 100)
        for i, name in enumerate(message.documents_received)
    ]
    missing = []
    for index, document in enumerate(message.missing_documents):
        where = f"missing_documents[{index}]"
        due_on = to_date(document.due_on, f"{where}.due_on")
        if due_on < accepted_on:
            raise InvalidInput(
                f"{where}.due_on",
                f"{due_on.isoformat()} is before acceptance ({accepted_on.isoformat()})",
            )
        if document.HasField("supplied_on"):
            raise InvalidInput(f"{where}.supplied_on", "a missing document is supplied later")
        missing.append((_text(document.name, f"{where}.name", 100), due_on))
    commitments = [
        _text(name, f"commitments[{i}]", 100) for i, name in enumerate(message.commitments)
    ]
    seen: set[str] = set()
    for field, name in [
        *((f"documents_received[{i}]", name) for i, name in enumerate(documents)),
        *((f"missing_documents[{i}].name", name) for i, (name, _due) in enumerate(missing)),
    ]:
        if name in seen:
            raise InvalidInput(field, f"{name!r} is listed twice")
        seen.add(name)
    return applications.NewApplication(
        request_id=_code(message.request_id, "request_id", 64),
        person_id=read_resident_id(message.person_id, "person_id").number,
        household_id=_text(message.household_id, "household_id", 64),
        region=message.region,
        kind=APPLICATION_KINDS.code(message.kind, "kind"),
        accepted_on=accepted_on,
        documents_received=tuple(documents),
        missing_documents=tuple(missing),
        commitments=tuple(commitments),
        case_worker=_text(message.case_worker, "case_worker", 64),
    )


def application_decision(
    message: assistance_pb2.DecideApplicationRequest, today: date
) -> applications.Decision:
    approve = DECISIONS.code(message.decision, "decision") == "approve"
    if not 0 <= message.approved_amount_fen <= applications.MAX_ONE_OFF_FEN:
        raise InvalidInput(
            "approved_amount_fen",
            f"from 0 to {applications.MAX_ONE_OFF_FEN} fen, got {message.approved_amount_fen}",
        )
    decided_on = (
        _past_day(message, "decided_on", today) if message.HasField("decided_on") else today
    )
    return applications.Decision(
        approve=approve,
        reason=_text(message.reason, "reason", 500),
        decided_on=decided_on,
        approved_amount_fen=message.approved_amount_fen,
        case_worker=_text(message.case_worker, "case_worker", 64),
    )


DECISIONS = EnumCodes(assistance_pb2.Decision, "DECISION_")


def application_message(application: applications.Application) -> assistance_pb2.Application:
    message = assistance_pb2.Application(
        application_id=application.application_id,
        request_id=application.request_id,
        person_id=application.person_id,
        household_id=application.household_id,
        region=application.region,
        kind=APPLICATION_KINDS.value(application.kind),
        accepted_on=from_date(application.accepted_on),
        documents_received=application.documents_received,
        missing_documents=[
            assistance_pb2.MissingDocument(
                name=document.name,
                due_on=from_date(document.due_on),
                supplied_on=None
                if document.supplied_on is None
                else from_date(document.supplied_on),
            )
            for document in application.missing_documents
        ],
        commitments=application.commitments,
        case_worker=application.case_worker,
        state=APPLICATION_STATES.value(application.state),
        deadline=from_date(application.deadline),
        deadline_provisional=application.deadline_provisional,
        working_days_left=application.working_days_left,
        overdue=application.overdue,
        decision_reason=application.decision_reason or "",
        approved_amount_fen=application.approved_amount_fen,
        status_certified=application.status_certified,
    )
    for name in ("decided_on", "status_valid_from", "status_valid_to"):
        value = getattr(application, name)
        if value is not None:
            getattr(message, name).CopyFrom(from_date(value))
    return message


def _region_and_year(
    request: Any, required: bool, region_of: Callable[[str], str]
) -> tuple[str | None, int | None]:
    """A listing's region (read by ``region_of``, which names the field) and year: both
    required, or (``required`` False: the listing names a person or a household) each
    only if given."""
    region = region_of(request.region) if required or request.region else None
    if not (required or request.year):
        return region, None
    check_year(request.year, "year")
    return region, request.year


def _optional_person(text: str) -> str | None:
    """A listing's person, if one is given: a valid identity number (InvalidInput on
    ``person_id`` otherwise)."""
    return read_resident_id(text, "person_id").number if text else None


def _application_id(value: int) -> int:
    if value < 1:
        raise InvalidInput("application_id", "required: a positive id")
    return value


def _text(text: str, field: str, limit: int = 64) -> str:
    """A name or short text as a clerk typed it: required, stripped, at most ``limit``."""
    value = text.strip()
    if not value:
        raise InvalidInput(field, "required")
    if len(value) > limit:
        raise InvalidInput(field, f"at most {limit} characters, got {len(value)}")
    check_visible(value, field)
    return value


def _past_day(message: Any, name: str, today: date) -> date:
    """A required date of the message, in a year the platform keeps and not after today."""
    day = to_date(getattr(message, name), name)
    check_year(day.year, name)
    if day > today:
        raise InvalidInput(name, f"{day.isoformat()} is after today ({today.isoformat()})")
    return day


def working_calendar(path: Path | None) -> WorkingCalendar:
    """The calendar with the bureau's table from ``path`` (JSON or YAML); SystemExit with
    one line naming the file and the entry at fault."""
    if path is None:
        return WorkingCalendar()
    where = f"DOUDI_WORKING_CALENDAR_FILE {path}"
    try:
        table = yaml.safe_load(path.read_text(encoding="utf-8"))  # JSON is YAML too
        return WorkingCalendar.from_table(table)
    except OSError as error:
        raise SystemExit(f"{where}: cannot be read ({error.strerror})") from None
    except yaml.YAMLError as error:
        raise SystemExit(f"{where}: not JSON or YAML ({error})") from None
    except InvalidInput as error:
        raise SystemExit(f"{where}: {error}") from None


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
        case_worker=_text(request.case_worker, "case_worker"),
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

# --- proactive screening ---

SCREEN_TIMEOUT_SECONDS = 300.0
"""How long settlement may take to recompute a thousand persons' years."""
OFFER_STATES = EnumCodes(assistance_pb2.OfferState, "OFFER_STATE_")
SCREENING_SOURCES = EnumCodes(assistance_pb2.ScreeningSource, "SCREENING_SOURCE_")


def screening_run_request(
    request: assistance_pb2.RunScreeningRequest, regions: frozenset[str]
) -> screening.RunRequest:
    """The run asked for, checked: InvalidInput names the field at fault."""
    request_id = request.request_id
    if not request_id or len(request_id) > MAX_REQUEST_ID_LENGTH or not request_id.isprintable():
        raise InvalidInput(
            "request_id",
            f"required: an idempotency key of 1 to {MAX_REQUEST_ID_LENGTH} printable characters",
        )
    region = _region(request.region)
    if region not in regions:
        raise InvalidInput(
            "region", f"{region} is not a pooling region the platform has a pack for"
        )
    check_year(request.year, "year")
    return screening.RunRequest(
        request_id=request_id,
        region=region,
        year=request.year,
        case_worker=_text(request.case_worker, "case_worker"),
    )


def _offer_id(value: int) -> int:
    if value < 1:
        raise InvalidInput("offer_id", "required: a positive offer id")
    return value


def screening_run_message(run: screening.Run) -> assistance_pb2.ScreeningRun:
    return assistance_pb2.ScreeningRun(
        run_id=run.run_id,
        region=run.region,
        year=run.year,
        case_worker=run.case_worker,
        create_time=to_timestamp(run.created_at),
        offer_count=run.offer_count,
        offered_fen=run.offered_fen,
    )


def screening_offer_message(offer: screening.Offer) -> assistance_pb2.ScreeningOffer:
    details = offer.details
    message = assistance_pb2.ScreeningOffer(
        offer_id=offer.offer_id,
        run_id=offer.run_id,
        source=SCREENING_SOURCES.value(offer.source),
        reference=offer.reference,
        person_id=offer.person_id,
        name=offer.name,
        region=offer.region,
        year=offer.year,
        settles_on=from_date(offer.settled_on),
        visit_type=ASSISTANCE_VISIT_TYPES.value(offer.visit_type),
        statuses=[ASSISTANCE_STATUSES.value(status) for status in offer.statuses],
        policy=offer.policy,
        self_pay_fen=offer.self_pay_fen,
        owed_fen=int(details.get("owed_fen", offer.offered_fen)),
        paid_before_fen=int(details.get("paid_before_fen", 0)),
        offered_fen=offer.offered_fen,
        explanation=str(details.get("explanation", "")),
        details_json=json.dumps(details, ensure_ascii=False, sort_keys=True),
        state=OFFER_STATES.value(offer.state),
        confirmed_by=offer.confirmed_by or "",
        confirm_note=offer.confirm_note or "",
        paid_fen=offer.paid_fen,
    )
    if offer.confirmed_at is not None:
        message.confirm_time.CopyFrom(to_timestamp(offer.confirmed_at))
    return message


# --- end of proactive screening ---


def setup(settings: Settings) -> Setup:
    calendar = working_calendar(settings.working_calendar_file)
    try:
        time_zone = ZoneInfo(settings.time_zone)
    except (ZoneInfoNotFoundError, ValueError):
        raise SystemExit(f"DOUDI_TIME_ZONE {settings.time_zone!r}: not a time zone") from None

    async def build(
        engine: sqlalchemy.Engine, stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        # applications: provisional deadlines counted again (the table may know their year
        # now); approved expenditure_hardship statuses sent to the hub.
        await write_in_thread(engine, applications.recount_provisional, calendar=calendar)
        datashare = outbox.open_channel(stack, settings.datashare_address, settings)
        certifying = outbox.start(stack, certification_sender(engine, settings, datashare))
        # dual early warning: the warnings raised go to the hub
        warned = outbox.start(stack, warning_sender(engine, settings, datashare))
        # One registry, loaded before the first settlement: the servicer's and the
        # warning pass's (warnings.packs, which the ledger's callers reach).
        registry = await asyncio.to_thread(warnings.packs)
        # proactive screening: settlement recomputes settled visits
        settlement = settlement_pb2_grpc.SettlementServiceStub(
            outbox.open_channel(stack, settings.settlement_address, settings)
        )
        servicer = AssistanceServicer(
            engine,
            registry=registry,
            calendar=calendar,
            time_zone=time_zone,
            regions=registry.regions,
            certifying=certifying,
            warning_sender=warned,
            settlement=settlement,
            internal=outbox.internal_metadata(settings),
        )

        def register(server: grpc.aio.Server) -> None:
            assistance_pb2_grpc.add_AssistanceServiceServicer_to_server(servicer, server)

        return register, internal_authenticator(settings)

    return build


def main() -> None:
    run_service(SPEC, Settings, setup)
