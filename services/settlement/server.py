"""The settlement service's gRPC server: ``python -m services.settlement``.

Hospitals call it with their API key (through the gateway, or directly); the
platform's internal token may read, list and reverse any hospital's
settlements and register hospitals.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import re
import time
from collections.abc import Callable, Sequence
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import grpc
import sqlalchemy

from doudi.common import keys, metrics, outbox
from doudi.common.db import read_in_thread, write_in_thread
from doudi.common.enums import (
    ACCIDENT_CLAIM_STATES,
    ACCIDENT_KINDS,
    SETTLEMENT_AGENCIES,
    SETTLEMENT_CERTIFICATE_KINDS,
    SETTLEMENT_EMPLOYMENTS,
    SETTLEMENT_REGISTRATION_KINDS,
    SETTLEMENT_SCHEMES,
    SETTLEMENT_STATUSES,
    SETTLEMENT_TIERS,
)
from doudi.common.errors import Aborted, FailedPrecondition, NotFound
from doudi.common.grpc_server import (
    Authenticator,
    Caller,
    Registrar,
    ServiceSpec,
    Setup,
    chain,
    internal_authenticator,
    require,
    run_service,
)
from doudi.common.outbox import Loop, received_batch, received_period, received_person
from doudi.common.paging import decode_token, encode_token, page_size
from doudi.common.protos import from_date, optional_date, to_date, to_timestamp
from doudi.common.visits import VISIT_TYPES, visit_from_proto
from doudi.core.accidents import DEATH
from doudi.core.dates import check_year
from doudi.core.engine import LayerPayment
from doudi.core.errors import InvalidInput
from doudi.core.identity import ResidentId, read_resident_id
from doudi.core.model import REGION_CODE, Certificate, Registration, Visit
from doudi.core.money import MAX_BILL_FEN, MAX_ITEM_FEN
from doudi.core.packs import PackRegistry
from doudi.settlement.v1 import settlement_pb2, settlement_pb2_grpc
from services.settlement import accidents, accounts, screening, service
from services.settlement.batching import SettlementBatcher
from services.settlement.delivery import EventSender
from services.settlement.service import Hospital, SettleCommand, SettlementRecord
from services.settlement.settings import DEFAULT_PORT, Settings

log = logging.getLogger("doudi.settlement")

SPEC = ServiceSpec(
    name="settlement",
    service_name="doudi.settlement.v1.SettlementService",
    default_port=DEFAULT_PORT,
    migrations=Path(__file__).parent / "migrations",
)

STATES = {
    service.SETTLED: settlement_pb2.SETTLEMENT_STATE_SETTLED,
    service.REVERSED: settlement_pb2.SETTLEMENT_STATE_REVERSED,
    service.PREVIEW: settlement_pb2.SETTLEMENT_STATE_UNSPECIFIED,
}
MAX_REQUEST_ID_LENGTH = 128
HOSPITAL_LEVELS = range(4)  # 0 = pharmacy; 1-3 as docs/domain.md section 6
_T = TypeVar("_T")


class HospitalDirectory:
    """Registered hospitals by API-key digest and by id, cached for ``ttl`` seconds (a key
    never past its retirement: doudi.common.keys.KeyCache)."""

    def __init__(self, engine: sqlalchemy.Engine, ttl: float) -> None:
        self._engine = engine
        self._ttl = ttl
        self._by_key: keys.KeyCache[Hospital] = keys.KeyCache(ttl)
        self._by_id: dict[str, tuple[Hospital, float]] = {}

    async def by_key(self, api_key: str) -> Hospital | None:
        digest = keys.digest(api_key)
        cached = self._by_key.get(digest)
        if cached is not None:
            return cached
        found = await read_in_thread(self._engine, service.hospital_by_key, api_key_sha256=digest)
        if found is None:
            return None
        hospital, retires_at = found
        self._by_key.put(digest, hospital, retires_at)
        return hospital

    async def by_id(self, hospital_id: str) -> Hospital | None:
        cached = self._by_id.get(hospital_id)
        if cached is not None and cached[1] > time.monotonic():
            return cached[0]
        found: Hospital | None = await read_in_thread(
            self._engine, service.get_hospital, hospital_id=hospital_id
        )
        # Only hospitals found are remembered, as keys (doudi.common.keys.KeyCache).
        if found is not None:
            self._by_id[hospital_id] = (found, time.monotonic() + self._ttl)
        return found

    def forget(self, hospital_id: str) -> None:
        self._by_id.pop(hospital_id, None)
        self._by_key.forget(lambda hospital: hospital.hospital_id != hospital_id)

    def authenticator(self) -> Authenticator:
        async def authenticate(token: str) -> Caller | None:
            hospital = await self.by_key(token)
            return None if hospital is None else Caller("hospital", hospital.hospital_id)

        return authenticate


class SettlementServicer(settlement_pb2_grpc.SettlementServiceServicer):
    def __init__(
        self,
        *,
        engine: sqlalchemy.Engine,
        registry: PackRegistry,
        hospitals: HospitalDirectory,
        timezone: ZoneInfo,
        events: Loop,
        given_keys: bool = False,
    ) -> None:
        self.engine = engine
        # Whether CreateHospital takes a key the caller gives (the demo's, locally) rather
        # than only making one.
        self.given_keys = given_keys
        # Sends each settlement's and reversal's event to assistance in the background:
        # woken after each commit, never awaited by the caller.
        self.events = events
        self.registry = registry
        self.hospitals = hospitals
        self.timezone = timezone
        self.regions = registry.regions
        # Idempotency keys being settled by this process right now: a second
        # request with one of them answers ABORTED (HTTP 409) instead of waiting.
        self.in_flight: set[tuple[str, str]] = set()
        # Settlements asked at the same time go to the database together; the event
        # sender is woken after each batch that settled any.
        self.batcher = SettlementBatcher(engine, day=self._day, settled=events.wake)

    # --- settling ---------------------------------------------------------------------

    async def PreviewSettlement(
        self,
        request: settlement_pb2.PreviewSettlementRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.PreviewSettlementResponse:
        hospital = await self._calling_hospital()
        resident_id, visit = _read_visit(request.person_id, request.visit, hospital)
        command = SettleCommand(
            hospital,
            "",
            "",
            resident_id,
            visit,
            self.registry,
            pay_from_personal_account=request.pay_from_personal_account,
        )
        record = await read_in_thread(self.engine, service.preview, command=command)
        return settlement_pb2.PreviewSettlementResponse(settlement=settlement_message(record))

    async def Settle(
        self, request: settlement_pb2.SettleRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> settlement_pb2.SettleResponse:
        hospital = await self._calling_hospital()
        request_id = _request_id(request.request_id)
        resident_id, visit = _read_visit(request.person_id, request.visit, hospital)
        admission_id = _admission_id(request.admission_id) if request.admission_id else ""
        digest = _request_digest(request)
        key = (hospital.hospital_id, request_id)
        if key in self.in_flight:
            raise Aborted(
                "a request with this idempotency key is still being settled; retry later",
                reason="REQUEST_IN_FLIGHT",
                field="request_id",
            )
        self.in_flight.add(key)
        command = SettleCommand(
            hospital,
            request_id,
            digest,
            resident_id,
            visit,
            self.registry,
            pay_from_personal_account=request.pay_from_personal_account,
            admission_id=admission_id,
        )
        try:
            # Settled in a batch with the calls that arrive meanwhile (batching.py). A retry
            # is found by the unique key when its settlement is stored, not by a read before
            # the batch: retries are rare, settlements are not.
            record, replayed = await self.batcher.settle(command)
        finally:
            self.in_flight.discard(key)
        if not replayed:
            metrics.count_settlement(
                service.SETTLED, ((layer.fund, layer.paid_fen) for layer in record.layers)
            )
        # At DEBUG: formatting and masking the line cost a tenth of the process's time per
        # settlement (docs/performance.md); settlements are counted by the metrics instead.
        if not replayed and log.isEnabledFor(logging.DEBUG):
            log.debug(
                "settled %s: %s visit %s of person %s at %s under %s: total %d, funds %d, "
                "self-pay %d fen",
                record.settlement_id,
                record.visit_type,
                record.visit_id,
                record.person_id,  # masked by the log formatter
                record.hospital_id,
                record.policy,
                record.total_fen,
                record.fund_paid_fen,
                record.self_pay_fen,
            )
        # Built in place from a dict (protobuf takes one for a message field; its stubs do
        # not say so): a message given instead is copied.
        answer = settlement_pb2.SettleResponse(
            settlement=_settlement_fields(record),  # type: ignore[arg-type]
            replayed=replayed,
        )
        _add_parts(answer.settlement, record)
        return answer

    async def ReverseSettlement(
        self,
        request: settlement_pb2.ReverseSettlementRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.ReverseSettlementResponse:
        caller = require("hospital", "internal")
        request_id = _request_id(request.request_id)
        settlement_id = _settlement_id(request.settlement_id)
        hospital_id = caller.id if caller.kind == "hospital" else None

        now = datetime.now(UTC)
        record, replayed = await write_in_thread(
            self.engine,
            service.reverse,
            settlement_id=settlement_id,
            hospital_id=hospital_id,
            request_id=request_id,
            now=now,
            day=self._day(now),
        )
        if not replayed:
            self.events.wake()
            metrics.count_settlement(
                service.REVERSED, ((layer.fund, layer.paid_fen) for layer in record.layers)
            )
        return settlement_pb2.ReverseSettlementResponse(
            settlement=settlement_message(record), replayed=replayed
        )

    # --- reading ----------------------------------------------------------------------

    async def GetSettlement(
        self,
        request: settlement_pb2.GetSettlementRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.GetSettlementResponse:
        caller = require("hospital", "internal")
        record = await read_in_thread(
            self.engine,
            service.get,
            settlement_id=_settlement_id(request.settlement_id),
            hospital_id=caller.id if caller.kind == "hospital" else None,
        )
        return settlement_pb2.GetSettlementResponse(settlement=settlement_message(record))

    async def ListSettlements(
        self,
        request: settlement_pb2.ListSettlementsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.ListSettlementsResponse:
        hospital_id = self._hospital_scope(request.hospital_id)
        person_id = (
            read_resident_id(request.person_id, "person_id").number if request.person_id else None
        )
        start = to_date(request.start_date, "start_date")
        end = optional_date(request, "end_date", "end_date") or start
        if end < start:
            raise InvalidInput("end_date", "is before start_date")
        size = page_size(request.page_size)
        position = decode_token(request.page_token, 2)
        after = None
        if position is not None:
            try:
                after = (datetime.fromisoformat(position[0]), str(position[1]))
            except (TypeError, ValueError):
                raise InvalidInput("page_token", "not a page token this service made") from None
        records, last = await read_in_thread(
            self.engine,
            service.list_settlements,
            hospital_id=hospital_id,
            person_id=person_id,
            start=start,
            end=end,
            page_size=size,
            after=after,
        )
        return settlement_pb2.ListSettlementsResponse(
            settlements=[settlement_message(record) for record in records],
            next_page_token="" if last is None else encode_token([last[0].isoformat(), last[1]]),
        )

    async def GetDailyClearing(
        self,
        request: settlement_pb2.GetDailyClearingRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.GetDailyClearingResponse:
        # Internal callers without a hospital: every hospital's day together.
        hospital_id = self._hospital_scope(request.hospital_id)
        day = to_date(request.date, "date")
        totals = await read_in_thread(
            self.engine, service.daily_clearing, hospital_id=hospital_id, day=day
        )
        return settlement_pb2.GetDailyClearingResponse(
            hospital_id=hospital_id or "",
            date=from_date(day),
            funds=[
                settlement_pb2.FundClearing(
                    fund=total.fund,
                    settled_fen=total.settled_fen,
                    reversed_fen=total.reversed_fen,
                    net_fen=total.net_fen,
                    record_count=total.record_count,
                )
                for total in totals
            ],
            net_fen=sum(total.net_fen for total in totals),
        )

    # --- hospitals --------------------------------------------------------------------

    async def CreateHospital(
        self,
        request: settlement_pb2.CreateHospitalRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.CreateHospitalResponse:
        require("internal")
        hospital = self._read_hospital(request.hospital)
        made = not request.api_key
        if not made and not self.given_keys:
            raise InvalidInput(
                "api_key",
                "the platform makes the key outside DOUDI_ENVIRONMENT=local: leave it empty",
            )
        api_key = keys.new_key() if made else request.api_key
        if len(api_key) < 8:
            raise InvalidInput("api_key", "at least 8 characters")

        stored = await write_in_thread(
            self.engine,
            service.create_hospital,
            hospital=hospital,
            api_key_sha256=keys.digest(api_key),
            now=datetime.now(UTC),
        )
        self.hospitals.forget(stored.hospital_id)
        return settlement_pb2.CreateHospitalResponse(
            hospital=hospital_message(stored), api_key=api_key if made else ""
        )

    async def GetHospital(
        self,
        request: settlement_pb2.GetHospitalRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.GetHospitalResponse:
        hospital_id = self._hospital_scope(request.hospital_id)
        if hospital_id is None:
            raise InvalidInput("hospital_id", "required for internal callers")
        hospital = await self.hospitals.by_id(hospital_id)
        if hospital is None:
            raise NotFound(f"no hospital {hospital_id!r}", field="hospital_id")
        return settlement_pb2.GetHospitalResponse(hospital=hospital_message(hospital))

    async def ListHospitals(
        self,
        request: settlement_pb2.ListHospitalsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.ListHospitalsResponse:
        require("internal")
        region = self._known_region(request.region, "region") if request.region else None
        found, token = await read_in_thread(
            self.engine,
            service.list_hospitals,
            region=region,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        answer = settlement_pb2.ListHospitalsResponse(
            hospitals=[hospital_message(hospital) for hospital in found], next_page_token=token
        )
        if request.with_keys:
            now = datetime.now(UTC)
            for hospital in found:
                stored = await read_in_thread(
                    self.engine,
                    service.hospital_keys_of,
                    hospital_id=hospital.hospital_id,
                    now=now,
                )
                answer.keys.add(hospital_id=hospital.hospital_id, keys=key_messages(stored))
        return answer

    async def RotateHospitalKey(
        self,
        request: settlement_pb2.RotateHospitalKeyRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.RotateHospitalKeyResponse:
        require("internal")
        hospital_id = self._hospital_id(request.hospital_id)
        overlap = keys.overlap_seconds(request.overlap_seconds)
        api_key = keys.new_key()
        now = datetime.now(UTC)
        hospital, retires = await write_in_thread(
            self.engine,
            service.rotate_hospital_key,
            hospital_id=hospital_id,
            api_key_sha256=keys.digest(api_key),
            now=now,
            overlap=overlap,
        )
        self.hospitals.forget(hospital_id)
        stored = await read_in_thread(
            self.engine, service.hospital_keys_of, hospital_id=hospital_id, now=now
        )
        log.info("hospital %s: a new API key; the older ones retire at %s", hospital_id, retires)
        return settlement_pb2.RotateHospitalKeyResponse(
            hospital=hospital_message(hospital),
            api_key=api_key,
            older_keys_retire_time=to_timestamp(retires),
            keys=key_messages(stored),
        )

    async def EndHospitalKeyRotation(
        self,
        request: settlement_pb2.EndHospitalKeyRotationRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.EndHospitalKeyRotationResponse:
        require("internal")
        hospital_id = self._hospital_id(request.hospital_id)
        now = datetime.now(UTC)
        hospital, retired = await write_in_thread(
            self.engine, service.end_hospital_key_rotation, hospital_id=hospital_id, now=now
        )
        self.hospitals.forget(hospital_id)
        stored = await read_in_thread(
            self.engine, service.hospital_keys_of, hospital_id=hospital_id, now=now
        )
        log.info("hospital %s: %d older API keys retired", hospital_id, retired)
        return settlement_pb2.EndHospitalKeyRotationResponse(
            hospital=hospital_message(hospital), retired_count=retired, keys=key_messages(stored)
        )

    @staticmethod
    def _hospital_id(hospital_id: str) -> str:
        if not hospital_id or len(hospital_id) > 32:
            raise InvalidInput("hospital_id", "required, at most 32 characters")
        return hospital_id

    # --- statuses (from the datashare hub) ---------------------------------------------

    async def RecordPersonStatuses(
        self,
        request: settlement_pb2.RecordPersonStatusesRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.RecordPersonStatusesResponse:
        require("internal")
        persons = [
            service.HeldStatuses(
                received_person(person.person_id, person.version, where),
                person.version,
                tuple(
                    received_period(
                        period,
                        f"{where}.periods[{index}]",
                        SETTLEMENT_STATUSES,
                        SETTLEMENT_AGENCIES,
                    )
                    for index, period in enumerate(person.periods)
                ),
            )
            for where, person in received_batch(request.persons)
        ]
        versions = await write_in_thread(
            self.engine, service.record_statuses, persons=persons, now=datetime.now(UTC)
        )
        return settlement_pb2.RecordPersonStatusesResponse(versions=versions)

    async def RecordPersonCoverage(
        self,
        request: settlement_pb2.RecordPersonCoverageRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.RecordPersonCoverageResponse:
        require("internal")
        persons = []
        for where, person in received_batch(request.persons):
            person_id = received_person(person.person_id, person.version, where)
            if not person.region or len(person.region) > 32:
                raise InvalidInput(f"{where}.region", "required: the person's pooling region")
            years: dict[int, tuple[str, str | None, str | None]] = {}
            for index, enrolment in enumerate(person.enrolments):
                at = f"{where}.enrolments[{index}]"
                if enrolment.year in years:
                    raise InvalidInput(f"{at}.year", f"{enrolment.year} is given twice")
                years[enrolment.year] = (
                    SETTLEMENT_SCHEMES.code(enrolment.scheme, f"{at}.scheme"),
                    SETTLEMENT_EMPLOYMENTS.optional_code(enrolment.employment, f"{at}.employment"),
                    SETTLEMENT_TIERS.optional_code(enrolment.tier, f"{at}.tier"),
                )
            persons.append(
                service.HeldCoverage(
                    person_id,
                    person.version,
                    person.region,
                    years,
                    received_certificates(person.certificates, where),
                    received_registrations(person.registrations, where),
                )
            )
        versions = await write_in_thread(
            self.engine, service.record_coverage, persons=persons, now=datetime.now(UTC)
        )
        return settlement_pb2.RecordPersonCoverageResponse(versions=versions)

    # --- proactive screening (主动救助) ---------------------------------------------------

    async def ScreenSettlements(
        self,
        request: settlement_pb2.ScreenSettlementsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.ScreenSettlementsResponse:
        require("internal")
        if len(request.person_ids) > screening.MAX_PERSONS:
            raise InvalidInput("person_ids", f"at most {screening.MAX_PERSONS:,} persons per call")
        person_ids = [
            read_resident_id(person_id, f"person_ids[{index}]").number
            for index, person_id in enumerate(request.person_ids)
        ]
        check_year(request.year, "year")
        findings = await read_in_thread(
            self.engine,
            screening.screen,
            person_ids=person_ids,
            year=request.year,
            packs=self.registry,
        )
        log.info(
            "screened %d persons' settlements of %d: %d findings",
            len(set(person_ids)),
            request.year,
            len(findings),
        )
        return settlement_pb2.ScreenSettlementsResponse(
            findings=[finding_message(finding) for finding in findings]
        )

    # --- personal accounts (职工个人账户) -------------------------------------------------

    async def CreditPersonalAccount(
        self,
        request: settlement_pb2.CreditPersonalAccountRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.CreditPersonalAccountResponse:
        require("internal")
        request_id = _request_id(request.request_id)
        person_id = read_resident_id(request.person_id, "person_id").number
        check_year(request.year, "year")
        if not 1 <= request.amount_fen <= MAX_ITEM_FEN:
            raise InvalidInput("amount_fen", f"from 1 to {MAX_ITEM_FEN} fen (100 million yuan)")
        credited = await self._account_write(
            accounts.credit,
            request_id=request_id,
            person_id=person_id,
            year=request.year,
            amount_fen=request.amount_fen,
            packs=self.registry,
            now=datetime.now(UTC),
        )
        if not credited.replayed:
            log.info(
                "credited the personal account of %s for %d: %d fen, %d of them to the card",
                person_id,  # masked by the log formatter
                request.year,
                request.amount_fen,
                credited.card_part_fen,
            )
        return settlement_pb2.CreditPersonalAccountResponse(
            account=account_message(credited.account),
            movement=movement_message(credited.movement),
            card_scheduled_fen=credited.card_part_fen,
            replayed=credited.replayed,
        )

    async def TransferToCards(
        self,
        request: settlement_pb2.TransferToCardsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.TransferToCardsResponse:
        require("internal")
        region = self._known_region(request.region, "region")
        now = datetime.now(UTC)
        year, month = _month(request.month, self._day(now))
        page = await write_in_thread(
            self.engine,
            accounts.transfer_to_cards,
            region=region,
            year=year,
            month=month,
            packs=self.registry,
            page_size=request.page_size,
            page_token=request.page_token,
            now=now,
        )
        log.info(
            "moved %d fen to the cards of %d persons of region %s for %s (%d moved before)",
            page.moved_fen,
            page.transferred,
            region,
            request.month,
            page.already,
        )
        return settlement_pb2.TransferToCardsResponse(
            transferred_count=page.transferred,
            already_count=page.already,
            moved_fen=page.moved_fen,
            credited_count=page.credited,
            next_page_token=page.next_page_token,
        )

    async def WithdrawPersonalAccount(
        self,
        request: settlement_pb2.WithdrawPersonalAccountRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.WithdrawPersonalAccountResponse:
        require("internal")
        request_id = _request_id(request.request_id)
        person_id = read_resident_id(request.person_id, "person_id").number
        check_year(request.year, "year")
        moved = await self._account_write(
            accounts.withdraw,
            request_id=request_id,
            person_id=person_id,
            year=request.year,
            packs=self.registry,
            now=datetime.now(UTC),
        )
        movement = moved.movement
        return settlement_pb2.WithdrawPersonalAccountResponse(
            account=account_message(moved.account),
            movement=movement_message(movement),
            withdrawn_fen=-(movement.card_change_fen + movement.account_change_fen),
            replayed=moved.replayed,
        )

    async def PurchaseHealthProduct(
        self,
        request: settlement_pb2.PurchaseHealthProductRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.PurchaseHealthProductResponse:
        require("internal")
        request_id = _request_id(request.request_id)
        person_id = read_resident_id(request.person_id, "person_id").number
        if not request.product_id or len(request.product_id) > 64:
            raise InvalidInput("product_id", "required: a product id of the region's catalogue")
        now = datetime.now(UTC)
        moved = await self._account_write(
            accounts.purchase,
            request_id=request_id,
            person_id=person_id,
            product_id=request.product_id,
            packs=self.registry,
            day=self._day(now),
            now=now,
        )
        return settlement_pb2.PurchaseHealthProductResponse(
            account=account_message(moved.account),
            movement=movement_message(moved.movement),
            replayed=moved.replayed,
        )

    async def GetPersonalAccount(
        self,
        request: settlement_pb2.GetPersonalAccountRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.GetPersonalAccountResponse:
        require("internal")
        person_id = read_resident_id(request.person_id, "person_id").number
        account, movements, token = await read_in_thread(
            self.engine,
            accounts.get_account,
            person_id=person_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return settlement_pb2.GetPersonalAccountResponse(
            account=account_message(account),
            movements=[movement_message(movement) for movement in movements],
            next_page_token=token,
        )

    async def _account_write(self, handler: Callable[..., _T], **arguments: Any) -> _T:
        """An account's write; when the same request committed meanwhile through another
        call (a unique key broken), asked again, which answers it (replayed)."""
        try:
            return await write_in_thread(self.engine, handler, **arguments)
        except sqlalchemy.exc.IntegrityError:
            return await write_in_thread(self.engine, handler, **arguments)

    # --- accident cover (意外伤害附加保险) -----------------------------------------------

    async def FileAccidentClaim(
        self,
        request: settlement_pb2.FileAccidentClaimRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.FileAccidentClaimResponse:
        require("internal")
        now = datetime.now(UTC)
        today = self._day(now)
        asked = self._claim_request(request, today)
        claim, replayed = await write_in_thread(
            self.engine,
            accidents.file_claim,
            request=asked,
            packs=self.registry,
            now=now,
            today=today,
        )
        if not replayed:
            log.info(
                "accident claim %d filed: %s of person %s in region %s on %s",
                claim.claim_id,
                claim.kind,
                claim.person_id,  # masked by the log formatter
                claim.region,
                claim.event_date,
            )
        return settlement_pb2.FileAccidentClaimResponse(
            claim=accident_claim_message(claim), replayed=replayed
        )

    async def DecideAccidentClaim(
        self,
        request: settlement_pb2.DecideAccidentClaimRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.DecideAccidentClaimResponse:
        require("internal")
        claim_id = _claim_id(request.claim_id)
        reason = request.reason.strip()
        if request.approve and reason:
            raise InvalidInput("reason", "only a rejection takes a reason: leave it empty")
        if not request.approve and (not reason or len(reason) > 500 or not reason.isprintable()):
            raise InvalidInput("reason", "required to reject: 1 to 500 printable characters")
        now = datetime.now(UTC)
        claim = await write_in_thread(
            self.engine,
            accidents.decide_claim,
            claim_id=claim_id,
            approve=request.approve,
            reason=reason,
            packs=self.registry,
            now=now,
            today=self._day(now),
        )
        log.info("accident claim %d %s: paid %d fen", claim.claim_id, claim.state, claim.paid_fen)
        return settlement_pb2.DecideAccidentClaimResponse(claim=accident_claim_message(claim))

    async def GetAccidentClaim(
        self,
        request: settlement_pb2.GetAccidentClaimRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.GetAccidentClaimResponse:
        require("internal")
        claim = await read_in_thread(
            self.engine, accidents.get_claim, claim_id=_claim_id(request.claim_id)
        )
        return settlement_pb2.GetAccidentClaimResponse(claim=accident_claim_message(claim))

    async def ListAccidentClaims(
        self,
        request: settlement_pb2.ListAccidentClaimsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.ListAccidentClaimsResponse:
        require("internal")
        region = self._known_region(request.region, "region")
        state = (
            ACCIDENT_CLAIM_STATES.code(request.state, "state")
            if request.state != settlement_pb2.ACCIDENT_CLAIM_STATE_UNSPECIFIED
            else None
        )
        claims, token = await read_in_thread(
            self.engine,
            accidents.list_claims,
            region=region,
            state=state,
            size=request.page_size,
            token=request.page_token,
        )
        return settlement_pb2.ListAccidentClaimsResponse(
            claims=[accident_claim_message(claim) for claim in claims], next_page_token=token
        )

    async def GetAccidentClearing(
        self,
        request: settlement_pb2.GetAccidentClearingRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.GetAccidentClearingResponse:
        require("internal")
        region = self._known_region(request.region, "region")
        day = to_date(request.date, "date")
        funds = await read_in_thread(self.engine, accidents.clearing, region=region, day=day)
        return settlement_pb2.GetAccidentClearingResponse(
            region=region,
            date=from_date(day),
            funds=[
                settlement_pb2.AccidentFundClearing(
                    fund=paid.fund, claim_count=paid.claim_count, paid_fen=paid.paid_fen
                )
                for paid in funds
            ],
            claim_count=sum(paid.claim_count for paid in funds),
            paid_fen=sum(paid.paid_fen for paid in funds),
        )

    def _claim_request(
        self, request: settlement_pb2.FileAccidentClaimRequest, today: date
    ) -> accidents.ClaimRequest:
        """The claim as filed, its fields checked (InvalidInput naming the first at fault);
        what depends on the stored claims and the person is the handler's."""
        request_id = _request_id(request.request_id)
        region = self._known_region(request.region, "region")
        person_id = read_resident_id(request.person_id, "person_id").number
        kind = ACCIDENT_KINDS.code(request.kind, "kind")
        event_date = to_date(request.event_date, "event_date")
        if event_date > today:
            raise InvalidInput(
                "event_date",
                f"{event_date.isoformat()} is after today ({today.isoformat()}) on the "
                "bureau's calendar",
            )
        claimed = request.claimed_fen
        if kind == DEATH and claimed:
            raise InvalidInput("claimed_fen", "a death claim pays the pack's fixed sum: leave it 0")
        if kind != DEATH and not 0 < claimed <= MAX_BILL_FEN:
            raise InvalidInput(
                "claimed_fen",
                f"the medical costs on the receipts: above 0 and at most {MAX_BILL_FEN:,} fen, "
                f"got {claimed}",
            )
        return accidents.ClaimRequest(request_id, region, person_id, kind, event_date, claimed)

    # --- the admission desk (入院登记) ---------------------------------------------------

    async def SetHospitalReformed(
        self,
        request: settlement_pb2.SetHospitalReformedRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.SetHospitalReformedResponse:
        require("internal")
        hospital_id = self._hospital_id(request.hospital_id)
        hospital = await write_in_thread(
            self.engine,
            service.set_hospital_reformed,
            hospital_id=hospital_id,
            reformed=request.reformed,
        )
        self.hospitals.forget(hospital_id)
        log.info("hospital %s: reformed %s", hospital_id, hospital.reformed)
        return settlement_pb2.SetHospitalReformedResponse(hospital=hospital_message(hospital))

    async def GetEligibility(
        self,
        request: settlement_pb2.GetEligibilityRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.GetEligibilityResponse:
        hospital, reader = await self._admission_desk(request.hospital_id)
        resident_id = read_resident_id(request.person_id, "person_id")
        day = to_date(request.date, "date")
        check_year(day.year, "date")
        answer = await write_in_thread(
            self.engine,
            service.eligibility,
            hospital=hospital,
            resident_id=resident_id,
            day=day,
            referred=request.referred,
            packs=self.registry,
            reader=reader,
            now=datetime.now(UTC),
        )
        return settlement_pb2.GetEligibilityResponse(eligibility=eligibility_message(answer))

    async def Admit(
        self, request: settlement_pb2.AdmitRequest, context: grpc.aio.ServicerContext[Any, Any]
    ) -> settlement_pb2.AdmitResponse:
        hospital = await self._calling_hospital()
        self._admits(hospital)
        request_id = _request_id(request.request_id)
        resident_id = read_resident_id(request.person_id, "person_id")
        day = to_date(request.admitted, "admitted")
        now = datetime.now(UTC)
        if day > self._day(now):
            raise InvalidInput("admitted", f"{day.isoformat()} is after today")
        check_year(day.year, "admitted")
        body = settlement_pb2.AdmitRequest(
            person_id=request.person_id, admitted=request.admitted, referred=request.referred
        )
        digest = hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()
        try:
            record, replayed = await write_in_thread(
                self.engine,
                service.admit,
                hospital=hospital,
                request_id=request_id,
                request_sha256=digest,
                resident_id=resident_id,
                day=day,
                referred=request.referred,
                packs=self.registry,
                reader=hospital.hospital_id,
                now=now,
            )
        except sqlalchemy.exc.IntegrityError:  # the same key admitted meanwhile
            found = await read_in_thread(
                self.engine,
                service.replay_admission,
                hospital_id=hospital.hospital_id,
                request_id=request_id,
                request_sha256=digest,
            )
            if found is None:
                raise
            record, replayed = found, True
        if not replayed:
            log.info(
                "admitted %s: person %s at %s on %s, no deposit: %s",
                record.admission_id,
                record.person_id,  # masked by the log formatter
                record.hospital_id,
                record.admitted_on,
                record.no_deposit_rule or "no",
            )
        return settlement_pb2.AdmitResponse(admission=admission_message(record), replayed=replayed)

    async def GetAdmission(
        self,
        request: settlement_pb2.GetAdmissionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.GetAdmissionResponse:
        caller = require("hospital", "internal")
        record = await write_in_thread(
            self.engine,
            service.get_admission,
            admission_id=_admission_id(request.admission_id),
            hospital_id=caller.id if caller.kind == "hospital" else None,
            reader=caller.id if caller.kind == "hospital" else service.PLATFORM_READER,
            now=datetime.now(UTC),
        )
        return settlement_pb2.GetAdmissionResponse(admission=admission_message(record))

    async def CancelAdmission(
        self,
        request: settlement_pb2.CancelAdmissionRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.CancelAdmissionResponse:
        caller = require("hospital", "internal")
        record = await write_in_thread(
            self.engine,
            service.cancel_admission,
            admission_id=_admission_id(request.admission_id),
            hospital_id=caller.id if caller.kind == "hospital" else None,
        )
        return settlement_pb2.CancelAdmissionResponse(admission=admission_message(record))

    async def ListPersonReads(
        self,
        request: settlement_pb2.ListPersonReadsRequest,
        context: grpc.aio.ServicerContext[Any, Any],
    ) -> settlement_pb2.ListPersonReadsResponse:
        require("internal")
        person_id = read_resident_id(request.person_id, "person_id").number
        rows, token = await read_in_thread(
            self.engine,
            service.list_person_reads,
            person_id=person_id,
            page_size=request.page_size,
            page_token=request.page_token,
        )
        return settlement_pb2.ListPersonReadsResponse(
            reads=[
                settlement_pb2.PersonRead(
                    reader=row.reader,
                    method=row.method,
                    person_id=row.person_id,
                    read_time=to_timestamp(row.read_at),
                )
                for row in rows
            ],
            next_page_token=token,
        )

    async def _admission_desk(self, requested: str) -> tuple[Hospital, str]:
        """The hospital whose admission desk asks, and who the read is recorded as: a
        hospital asks for its own; the platform names one (an answer depends on its level
        and region)."""
        hospital_id = self._hospital_scope(requested)
        if hospital_id is None:
            raise InvalidInput(
                "hospital_id", "required for internal callers: the hospital whose desk asks"
            )
        hospital = await self.hospitals.by_id(hospital_id)
        if hospital is None:
            raise NotFound(f"no hospital {hospital_id!r}", field="hospital_id")
        self._admits(hospital)
        internal = require("hospital", "internal").kind == "internal"
        return hospital, service.PLATFORM_READER if internal else hospital.hospital_id

    @staticmethod
    def _admits(hospital: Hospital) -> None:
        if hospital.level == 0:
            raise FailedPrecondition(
                f"{hospital.hospital_id} is a pharmacy: it admits no patient",
                reason="NOT_A_HOSPITAL",
            )

    # --- helpers ----------------------------------------------------------------------

    async def _calling_hospital(self) -> Hospital:
        caller = require("hospital")
        hospital = await self.hospitals.by_id(caller.id)
        if hospital is None:  # removed since its key was cached
            raise NotFound(f"no hospital {caller.id!r}")
        return hospital

    def _hospital_scope(self, requested: str) -> str | None:
        """Which hospital's data the caller may see: a hospital only its own."""
        caller = require("hospital", "internal")
        if caller.kind == "internal":
            return requested or None
        if requested and requested != caller.id:
            raise NotFound(f"no hospital {requested!r}", field="hospital_id")
        return caller.id

    def _day(self, now: datetime) -> date:
        return now.astimezone(self.timezone).date()

    def _known_region(self, region: str, field: str) -> str:
        """A pooling region a pack knows, or InvalidInput on ``field``."""
        if region not in self.regions:
            known = ", ".join(sorted(self.regions))
            raise InvalidInput(field, f"unknown region {region!r} ({known})")
        return region

    def _read_hospital(self, message: settlement_pb2.Hospital) -> Hospital:
        hospital_id = message.hospital_id
        if not hospital_id or len(hospital_id) > 32 or not hospital_id.isascii():
            raise InvalidInput("hospital.hospital_id", "required: 1 to 32 ASCII characters")
        if not message.name.strip() or len(message.name) > 128:
            raise InvalidInput("hospital.name", "required: 1 to 128 characters")
        self._known_region(message.region, "hospital.region")
        if message.level not in HOSPITAL_LEVELS:
            raise InvalidInput("hospital.level", "1, 2 or 3 (0 for a pharmacy)")
        if message.reformed and message.level != 2:
            raise InvalidInput(
                "hospital.reformed", "only a level-2 hospital takes part in the reform"
            )
        return Hospital(
            hospital_id, message.name.strip(), message.region, message.level, message.reformed
        )


def _read_visit(
    person_id: str, message: settlement_pb2.Visit, hospital: Hospital
) -> tuple[ResidentId, Visit]:
    resident_id = read_resident_id(person_id, "person_id")
    visit = visit_from_proto(message, hospital_level=hospital.level)
    return resident_id, visit


def _request_id(value: str) -> str:
    if not value or len(value) > MAX_REQUEST_ID_LENGTH or not value.isprintable():
        raise InvalidInput(
            "request_id", f"required: an idempotency key of 1 to {MAX_REQUEST_ID_LENGTH} characters"
        )
    return value


def _month(value: str, today: date) -> tuple[int, int]:
    """A month ``YYYY-MM`` that has begun on the bureau's calendar: (year, month)."""
    match = _MONTH.fullmatch(value)
    if match is None:
        raise InvalidInput("month", f"a month as YYYY-MM (2026-03), got {value!r}")
    year, month = int(match["year"]), int(match["month"])
    check_year(year, "month")
    if (year, month) > (today.year, today.month):
        raise InvalidInput("month", f"{value} has not begun (today is {today.isoformat()})")
    return year, month


_MONTH = re.compile(r"(?P<year>\d{4})-(?P<month>0[1-9]|1[0-2])")


def account_message(account: accounts.Account) -> settlement_pb2.PersonalAccount:
    return settlement_pb2.PersonalAccount(
        person_id=account.person_id,
        region=account.region,
        card_fen=account.card_fen,
        account_fen=account.account_fen,
        balance_fen=account.balance_fen,
    )


MOVEMENT_KINDS = {
    kind: settlement_pb2.AccountMovementKind.Value(f"ACCOUNT_MOVEMENT_KIND_{kind.upper()}")
    for kind in accounts.KINDS
}


def movement_message(movement: accounts.Movement) -> settlement_pb2.AccountMovement:
    return settlement_pb2.AccountMovement(
        movement_id=movement.movement_id,
        kind=MOVEMENT_KINDS[movement.kind],
        card_change_fen=movement.card_change_fen,
        account_change_fen=movement.account_change_fen,
        card_after_fen=movement.card_after_fen,
        account_after_fen=movement.account_after_fen,
        year=movement.year,
        month=movement.month or 0,
        settlement_id=movement.settlement_id or "",
        product_id=movement.product_id or "",
        request_id=movement.request_id or "",
        create_time=to_timestamp(movement.made_at),
    )


def _settlement_id(value: str) -> str:
    if not value or len(value) > 36:
        raise InvalidInput("settlement_id", "required")
    return value


def _admission_id(value: str) -> str:
    if not value or len(value) > 36:
        raise InvalidInput("admission_id", "required: an admission's id, at most 36 characters")
    return value


def _request_digest(request: settlement_pb2.SettleRequest) -> str:
    """The fingerprint of what was asked, without the key: a retry must ask the same."""
    body = settlement_pb2.SettleRequest(
        person_id=request.person_id,
        visit=request.visit,
        pay_from_personal_account=request.pay_from_personal_account,
        admission_id=request.admission_id,
    )
    return hashlib.sha256(body.SerializeToString(deterministic=True)).hexdigest()


def settlement_message(record: SettlementRecord) -> settlement_pb2.Settlement:
    """The settlement as the API answers it; DATA_LOSS when a stored amount does not fit its
    int64 field (only a record written past the amount limits holds one)."""
    message = settlement_pb2.Settlement(**_settlement_fields(record))
    _add_parts(message, record)
    return message


def _settlement_fields(record: SettlementRecord) -> dict[str, Any]:
    """The settlement's fields but its layers and payouts, its amounts checked (see
    :func:`settlement_message`): a message made from them, or a message field given them
    (``SettleResponse(settlement=...)``), is built in place, not copied."""
    service.check_amounts(record)
    return {
        "settlement_id": record.settlement_id,
        "state": STATES[record.state],
        "hospital_id": record.hospital_id,
        "person_id": record.person_id,
        "visit_id": record.visit_id,
        "visit_type": VISIT_TYPES.value(record.visit_type),
        "settles_on": from_date(record.settles_on),
        "policy": record.policy,
        "total_fen": record.total_fen,
        "class_c_fen": record.class_c_fen,
        "over_limit_fen": record.over_limit_fen,
        "pre_self_pay_fen": record.pre_self_pay_fen,
        "out_of_scope_fen": record.out_of_scope_fen,
        "in_scope_fen": record.in_scope_fen,
        "fund_paid_fen": record.fund_paid_fen,
        "self_pay_fen": record.self_pay_fen,
        "personal_account_paid_fen": record.personal_account_paid_fen,
        "cash_pay_fen": record.cash_pay_fen,
        "create_time": None if record.settled_at is None else to_timestamp(record.settled_at),
        "reverse_time": None if record.reversed_at is None else to_timestamp(record.reversed_at),
        "admission_id": record.admission_id or "",
    }


def _add_parts(message: settlement_pb2.Settlement, record: SettlementRecord) -> None:
    """The settlement's layers and payouts, added to ``message`` in place."""
    add = message.layers.add
    for layer, fund, paid, _explanation in record.layers:
        add(layer=layer, fund=fund, paid_fen=paid)
    for benefit, disease_class, fund, diagnosis, paid in record.payouts:
        message.payouts.add(
            benefit=benefit,
            disease_class=disease_class,
            fund=fund,
            diagnosis=diagnosis,
            paid_fen=paid,
        )


def finding_message(finding: screening.Finding) -> settlement_pb2.ScreeningFinding:
    return settlement_pb2.ScreeningFinding(
        settlement_id=finding.settlement_id,
        person_id=finding.person_id,
        region=finding.region,
        visit_type=VISIT_TYPES.value(finding.visit_type),
        settles_on=from_date(finding.settles_on),
        policy=finding.policy,
        statuses_applied=[SETTLEMENT_STATUSES.value(code) for code in finding.statuses_applied],
        statuses_now=[SETTLEMENT_STATUSES.value(code) for code in finding.statuses_now],
        settled_layers=[layer_message(layer) for layer in finding.settled_layers],
        recomputed_layers=[layer_message(layer) for layer in finding.recomputed_layers],
        settled_self_pay_fen=finding.settled_self_pay_fen,
        recomputed_self_pay_fen=finding.recomputed_self_pay_fen,
        difference_fen=finding.difference_fen,
    )


def layer_message(layer: LayerPayment) -> settlement_pb2.LayerPayment:
    return settlement_pb2.LayerPayment(layer=layer.layer, fund=layer.fund, paid_fen=layer.paid_fen)


def eligibility_message(answer: service.Eligible) -> settlement_pb2.Eligibility:
    message = settlement_pb2.Eligibility(
        person_id=answer.person_id,
        date=from_date(answer.day),
        hospital_id=answer.hospital_id,
        region=answer.region,
        policy=answer.policy,
        enrolled=answer.enrolment is not None,
        statuses=[
            settlement_pb2.StatusPeriod(
                status=SETTLEMENT_STATUSES.value(held.status),
                valid_from=from_date(held.valid_from),
                valid_to=None if held.valid_to is None else from_date(held.valid_to),
                agency=SETTLEMENT_AGENCIES.value(held.agency),
            )
            for held in answer.statuses
        ],
        out_of_area=answer.out_of_area,
        referred=answer.referred,
        no_deposit=answer.no_deposit_rule is not None,
        no_deposit_rule=answer.no_deposit_rule or "",
        no_deposit_reason=answer.no_deposit_reason or "",
        certificates=[
            settlement_pb2.HeldCertificate(
                disease=certificate.disease,
                disease_name=name,
                kind=certificate.kind,
                valid_from=from_date(certificate.start),
                valid_to=from_date(certificate.end),
            )
            for certificate, name in answer.certificates
        ],
        registrations=[
            settlement_pb2.HeldRegistration(
                kind=registration.kind,
                region=registration.region,
                valid_from=from_date(registration.start),
                valid_to=None if registration.end is None else from_date(registration.end),
            )
            for registration in answer.registrations
        ],
        layers=[
            settlement_pb2.LayerCaps(
                layer=layer.layer,
                name=layer.name,
                eligible=layer.eligible,
                caps=[
                    settlement_pb2.YearlyCap(
                        cap=cap.cap,
                        limit_fen=cap.limit_fen,
                        carried_over_quota_fen=cap.carried_over_quota_fen,
                        used_fen=cap.used_fen,
                        left_fen=cap.left_fen,
                    )
                    for cap in layer.caps
                ],
            )
            for layer in answer.layers
        ],
        notes=answer.notes,
        personal_account_fen=answer.personal_account_fen,
    )
    if answer.enrolment is not None:
        scheme, employment, tier = answer.enrolment
        message.enrolment.CopyFrom(
            settlement_pb2.Enrolment(
                year=answer.day.year,
                scheme=SETTLEMENT_SCHEMES.value(scheme),
                employment=SETTLEMENT_EMPLOYMENTS.value(employment),
                tier=SETTLEMENT_TIERS.value(tier),
            )
        )
    return message


ADMISSION_STATES = {
    service.ADMITTED: settlement_pb2.ADMISSION_STATE_ADMITTED,
    service.DISCHARGED: settlement_pb2.ADMISSION_STATE_DISCHARGED,
    service.CANCELLED: settlement_pb2.ADMISSION_STATE_CANCELLED,
}


def admission_message(record: service.AdmissionRecord) -> settlement_pb2.Admission:
    return settlement_pb2.Admission(
        admission_id=record.admission_id,
        hospital_id=record.hospital_id,
        person_id=record.person_id,
        admitted=from_date(record.admitted_on),
        referred=record.referred,
        out_of_area=record.out_of_area,
        no_deposit=record.no_deposit_rule is not None,
        no_deposit_rule=record.no_deposit_rule or "",
        no_deposit_reason=record.no_deposit_reason or "",
        policy=record.policy,
        state=ADMISSION_STATES[record.state],
        settlement_id=record.settlement_id or "",
        create_time=to_timestamp(record.created_at),
    )


def key_messages(stored: list[keys.StoredKey]) -> list[settlement_pb2.ApiKeyInfo]:
    return [
        settlement_pb2.ApiKeyInfo(
            fingerprint=key.fingerprint,
            create_time=to_timestamp(key.created_at),
            retire_time=None if key.retires_at is None else to_timestamp(key.retires_at),
        )
        for key in stored
    ]


def hospital_message(hospital: Hospital) -> settlement_pb2.Hospital:
    return settlement_pb2.Hospital(
        hospital_id=hospital.hospital_id,
        name=hospital.name,
        region=hospital.region,
        level=hospital.level,
        reformed=hospital.reformed,
    )


def _claim_id(value: int) -> int:
    if value <= 0:
        raise InvalidInput("claim_id", f"required: a claim's id, got {value}")
    return value


def accident_claim_message(claim: accidents.AccidentClaim) -> settlement_pb2.AccidentClaim:
    return settlement_pb2.AccidentClaim(
        claim_id=claim.claim_id,
        request_id=claim.request_id,
        person_id=claim.person_id,
        region=claim.region,
        kind=ACCIDENT_KINDS.value(claim.kind),
        event_date=from_date(claim.event_date),
        received_on=from_date(claim.received_on),
        claimed_fen=claim.claimed_fen,
        state=ACCIDENT_CLAIM_STATES.value(claim.state),
        policy=claim.policy,
        fund=claim.fund,
        file_time=to_timestamp(claim.filed_at),
        decide_time=None if claim.decided_at is None else to_timestamp(claim.decided_at),
        decided_on=None if claim.decided_on is None else from_date(claim.decided_on),
        paid_fen=claim.paid_fen,
        rejection_reason=claim.rejection_reason or "",
    )


# --- outpatient certificates and registrations, as enrollment sends them ---------------


def received_certificates(
    sent: Sequence[settlement_pb2.Certificate], where: str
) -> tuple[Certificate, ...]:
    """The certificates enrollment sent with a person's coverage, checked;
    InvalidInput names the field."""
    found = []
    for index, certificate in enumerate(sent):
        at = f"{where}.certificates[{index}]"
        if not certificate.disease or len(certificate.disease) > 64:
            raise InvalidInput(f"{at}.disease", "required: the pack's disease id")
        start = to_date(certificate.valid_from, f"{at}.valid_from")
        end = to_date(certificate.valid_to, f"{at}.valid_to")
        if end < start:
            raise InvalidInput(f"{at}.valid_to", "is before valid_from")
        kind = SETTLEMENT_CERTIFICATE_KINDS.code(certificate.kind, f"{at}.kind")
        found.append(Certificate(certificate.disease, kind, start, end))
    return tuple(found)


def received_registrations(
    sent: Sequence[settlement_pb2.Registration], where: str
) -> tuple[Registration, ...]:
    """The registrations enrollment sent with a person's coverage, checked."""
    found = []
    for index, registration in enumerate(sent):
        at = f"{where}.registrations[{index}]"
        if not REGION_CODE.fullmatch(registration.region):
            raise InvalidInput(f"{at}.region", "a 6-digit administrative division code")
        start = to_date(registration.valid_from, f"{at}.valid_from")
        end = optional_date(registration, "valid_to", f"{at}.valid_to")
        if end is not None and end < start:
            raise InvalidInput(f"{at}.valid_to", "is before valid_from")
        kind = SETTLEMENT_REGISTRATION_KINDS.code(registration.kind, f"{at}.kind")
        found.append(Registration(kind, registration.region, start, end))
    return tuple(found)


def setup(settings: Settings) -> Setup:
    async def build(
        engine: sqlalchemy.Engine, stack: contextlib.AsyncExitStack
    ) -> tuple[Registrar, Authenticator]:
        registry = PackRegistry.load([settings.packs_dir] if settings.packs_dir else [])
        hospitals = HospitalDirectory(engine, settings.hospital_cache_seconds)
        assistance = outbox.open_channel(stack, settings.assistance_address, settings)
        servicer = SettlementServicer(
            engine=engine,
            registry=registry,
            hospitals=hospitals,
            timezone=ZoneInfo(settings.timezone),
            events=outbox.start(stack, EventSender(engine, settings, assistance)),
            given_keys=settings.environment == "local",
        )

        def register(server: grpc.aio.Server) -> None:
            settlement_pb2_grpc.add_SettlementServiceServicer_to_server(servicer, server)

        authenticate = chain(internal_authenticator(settings), hospitals.authenticator())
        return register, authenticate

    return build


def main() -> None:
    run_service(SPEC, Settings, setup)
