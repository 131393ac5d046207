"""The authorisation matrix (issue 20): each caller kind against each RPC and each route.

gRPC: every method of the four services, read from their generated descriptors, is called
with an empty request (SubmitRoster, client-streaming: an empty stream) as each kind of
caller (:data:`GRPC_CALLERS`). A caller is *refused* when the answer is UNAUTHENTICATED or
PERMISSION_DENIED, *admitted* when it is anything past the permission check (OK,
INVALID_ARGUMENT, NOT_FOUND...): the methods' validation then refuses what an empty
request lacks. :data:`GRPC_ADMITTED`, written from each servicer's ``require(...)`` /
``self._caller(...)`` and the protos' comments, says who is admitted to each method; the
observed matrix must equal it, and a method missing from it (a new RPC) fails the test.

HTTP: every route of the gateway, read from the application's routes (the console's
too), is called without credentials, with a wrong key, with the internal token, an
agency's key and a hospital's key, and (the console's) with a logged-in session of each
demo console account, POSTs with the session's CSRF token. :data:`ROUTES` says who is
served: ``/v1`` only a hospital's key (401 problem+json otherwise), the health check and
the documentation anyone, the console's pages a session whose role holds the page's
permission (:data:`CONSOLE_PERMISSIONS`, which must agree with gateway/console/roles.py;
403 otherwise), the login page otherwise; a route missing from it fails the test.
:data:`READ_BEFORE_AUTHORISING` lists the routes that refuse a bad path parameter before
they ask for credentials: none (the console asks a caller without a session to log in
whatever the address holds).

Empty requests and forms change nothing but the audit trail (an agency's list read, a
failed login): every admitted write is refused as bad input (:data:`ANSWERED_OK_EMPTY`),
and the ids in addresses are ones no record has (:data:`NO_SUCH_ID`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Final

import grpc
import httpx
import pytest
from google.protobuf import message_factory
from google.protobuf.descriptor import FileDescriptor, MethodDescriptor
from starlette.routing import BaseRoute, Mount

from doudi.assistance.v1 import assistance_pb2
from doudi.cli import demo
from doudi.common.errors import decode_status
from doudi.common.settings import LOCAL_INTERNAL_TOKEN
from doudi.core.packs import PackRegistry
from doudi.datashare.v1 import datashare_pb2
from doudi.enrollment.v1 import enrollment_pb2
from doudi.settlement.v1 import settlement_pb2
from gateway.app import create_app
from gateway.console import vendor
from gateway.console.references import PersonReferences
from gateway.console.roles import may
from gateway.settings import LOCAL_CONSOLE_SECRET, Settings
from services.datashare.server import ACTING_FOR, CONSOLE_USER
from tests.console_support import csrf_of
from tests.platform import Platform, demo_platforms
from tests.services import INTERNAL, bearer
from tests.support import PROBLEM_JSON, business_day

YEAR: Final = business_day().year
CALL_TIMEOUT_SECONDS: Final = 30.0

BACKENDS: Final = [
    # One platform per backend, on one worker (make's --dist loadgroup; under plain
    # --dist load the module's two tests of a backend are sent together).
    pytest.param("sqlite", id="sqlite", marks=pytest.mark.xdist_group("authorization-sqlite")),
    pytest.param(
        "postgresql",
        id="postgresql",
        marks=[pytest.mark.postgres, pytest.mark.xdist_group("authorization-postgresql")],
    ),
]


@pytest.fixture(scope="module", params=BACKENDS)
def platform(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Platform]:
    """The platform with the demo data and the demo console accounts."""
    with demo_platforms(tmp_path_factory, "authorization", YEAR) as on:
        yield on(request.param)


# --- gRPC --------------------------------------------------------------------------------

FILES: Final[dict[str, FileDescriptor]] = {
    "enrollment": enrollment_pb2.DESCRIPTOR,
    "datashare": datashare_pb2.DESCRIPTOR,
    "settlement": settlement_pb2.DESCRIPTOR,
    "assistance": assistance_pb2.DESCRIPTOR,
}
AGENCY_KEYS: Final = {agency: key for key, agency in demo.DEMO_AGENCY_KEYS.items()}
Metadata = tuple[tuple[str, str], ...]

GRPC_CALLERS: Final[dict[str, Metadata]] = {
    "anonymous": (),
    "wrong_token": bearer("not-a-doudi-token"),
    "internal": INTERNAL,
    "civil_affairs": bearer(AGENCY_KEYS["civil_affairs"]),
    "poverty_office": bearer(AGENCY_KEYS["poverty_office"]),
    # An agency the dual early warning does not go to.
    "trade_union": bearer(AGENCY_KEYS["trade_union"]),
    "hospital": bearer(demo.HOSPITALS[0].api_key),
    # The datashare hub's own ways of calling (the other services do not read them):
    # the platform asserting for an agency, and the console's calls for an account.
    "internal_for_agency": (*INTERNAL, (ACTING_FOR, "civil_affairs")),
    "console_staff": (*INTERNAL, (CONSOLE_USER, "caseworker")),
    "console_clerk": (*INTERNAL, (CONSOLE_USER, "civil")),
    "console_union_clerk": (*INTERNAL, (CONSOLE_USER, "union")),
    "console_unknown": (*INTERNAL, (CONSOLE_USER, "nobody")),
    "agency_for_console": (*bearer(AGENCY_KEYS["civil_affairs"]), (CONSOLE_USER, "caseworker")),
}
HUB_ONLY: Final = frozenset(
    {
        "internal_for_agency",
        "console_staff",
        "console_clerk",
        "console_union_clerk",
        "console_unknown",
        "agency_for_console",
    }
)
"""Callers tried on the datashare hub only."""

INTERNAL_ONLY: Final = frozenset({"internal"})
HOSPITAL: Final = frozenset({"hospital"})
HOSPITAL_OR_INTERNAL: Final = frozenset({"hospital", "internal"})
# The datashare hub: the platform (a staff account's console call is served as the
# platform's), the agencies' keys, and agency clerks through the console (as their agency).
PLATFORM: Final = frozenset({"internal", "internal_for_agency", "console_staff"})
AGENCIES: Final = frozenset({"civil_affairs", "poverty_office", "trade_union"})
CLERKS: Final = frozenset({"console_clerk", "console_union_clerk"})
AGENCY_READERS: Final = PLATFORM | AGENCIES | CLERKS
WARNING_AGENCIES: Final = frozenset({"civil_affairs", "poverty_office", "console_clerk"})
"""Civil affairs and the poverty office, whose clerks (and keys) the warnings go to."""

GRPC_ADMITTED: Final[dict[str, frozenset[str]]] = {
    # enrollment: the platform only
    "enrollment.CreatePerson": INTERNAL_ONLY,
    "enrollment.GetPerson": INTERNAL_ONLY,
    "enrollment.ListPersons": INTERNAL_ONLY,
    "enrollment.CreateEnrolment": INTERNAL_ONLY,
    "enrollment.GetEnrolment": INTERNAL_ONLY,
    "enrollment.GetCoverage": INTERNAL_ONLY,
    "enrollment.EnrolGap": INTERNAL_ONLY,
    "enrollment.GetSubsidySummary": INTERNAL_ONLY,
    "enrollment.ApplyForCertificate": INTERNAL_ONLY,
    "enrollment.DecideCertificateBatch": INTERNAL_ONLY,
    "enrollment.ListCertificates": INTERNAL_ONLY,
    "enrollment.ListCertificateApplications": INTERNAL_ONLY,
    "enrollment.RecordRegistration": INTERNAL_ONLY,
    "enrollment.EndRegistration": INTERNAL_ONLY,
    "enrollment.ListRegistrations": INTERNAL_ONLY,
    # datashare: an agency asserts its own statuses; the platform only naming the agency
    # it acts for (doudi-acting-for), never as itself
    "datashare.AssertStatus": AGENCIES | {"internal_for_agency"},
    "datashare.RevokeStatus": AGENCIES,
    "datashare.GetPersonStatuses": AGENCY_READERS,
    "datashare.ListStatusAssertions": AGENCY_READERS,
    "datashare.ListAuditEvents": PLATFORM,
    "datashare.SubmitRoster": AGENCIES,
    "datashare.GetRosterSubmission": AGENCY_READERS,
    "datashare.ListRosterSubmissions": AGENCY_READERS,
    "datashare.RecordRegister": PLATFORM,
    "datashare.CompareRosters": PLATFORM,
    "datashare.GetComparison": AGENCY_READERS,
    "datashare.ListComparisons": AGENCY_READERS,
    "datashare.ListComparisonEntries": AGENCY_READERS,
    "datashare.RecordWarnings": PLATFORM,
    "datashare.ListWarnings": PLATFORM | WARNING_AGENCIES,
    "datashare.GetWarning": PLATFORM | WARNING_AGENCIES,
    "datashare.AcknowledgeWarning": WARNING_AGENCIES,
    "datashare.DecideWarning": WARNING_AGENCIES,
    "datashare.CreateConsoleUser": PLATFORM,
    "datashare.GetConsoleUser": PLATFORM,
    "datashare.ListConsoleUsers": PLATFORM,
    "datashare.DisableConsoleUser": PLATFORM,
    "datashare.ResetConsolePassword": PLATFORM,
    "datashare.AuthenticateConsoleUser": PLATFORM,
    "datashare.RecordPersonView": PLATFORM,
    "datashare.CreateAgencyClient": PLATFORM,
    "datashare.ListAgencyClients": PLATFORM,
    "datashare.RotateAgencyKey": PLATFORM,
    "datashare.EndAgencyKeyRotation": PLATFORM,
    # settlement: hospitals settle; the platform reads, reverses and registers
    "settlement.PreviewSettlement": HOSPITAL,
    "settlement.Settle": HOSPITAL,
    "settlement.ReverseSettlement": HOSPITAL_OR_INTERNAL,
    "settlement.GetSettlement": HOSPITAL_OR_INTERNAL,
    "settlement.ListSettlements": HOSPITAL_OR_INTERNAL,
    "settlement.GetDailyClearing": HOSPITAL_OR_INTERNAL,
    "settlement.CreateHospital": INTERNAL_ONLY,
    "settlement.GetHospital": HOSPITAL_OR_INTERNAL,
    "settlement.ListHospitals": INTERNAL_ONLY,
    "settlement.RotateHospitalKey": INTERNAL_ONLY,
    "settlement.EndHospitalKeyRotation": INTERNAL_ONLY,
    "settlement.RecordPersonStatuses": INTERNAL_ONLY,
    "settlement.RecordPersonCoverage": INTERNAL_ONLY,
    "settlement.ScreenSettlements": INTERNAL_ONLY,
    # accident cover claims (意外伤害附加保险): the bureau's tools only
    "settlement.FileAccidentClaim": INTERNAL_ONLY,
    "settlement.DecideAccidentClaim": INTERNAL_ONLY,
    "settlement.GetAccidentClaim": INTERNAL_ONLY,
    "settlement.ListAccidentClaims": INTERNAL_ONLY,
    "settlement.GetAccidentClearing": INTERNAL_ONLY,
    "settlement.CreditPersonalAccount": INTERNAL_ONLY,
    "settlement.TransferToCards": INTERNAL_ONLY,
    "settlement.WithdrawPersonalAccount": INTERNAL_ONLY,
    "settlement.PurchaseHealthProduct": INTERNAL_ONLY,
    "settlement.GetPersonalAccount": INTERNAL_ONLY,
    "settlement.SetHospitalReformed": INTERNAL_ONLY,
    "settlement.GetEligibility": HOSPITAL_OR_INTERNAL,
    "settlement.Admit": HOSPITAL,
    "settlement.GetAdmission": HOSPITAL_OR_INTERNAL,
    "settlement.CancelAdmission": HOSPITAL_OR_INTERNAL,
    "settlement.ListPersonReads": INTERNAL_ONLY,
    # assistance: the platform only
    "assistance.GetServiceInfo": INTERNAL_ONLY,
    "assistance.RecordSettlementEvents": INTERNAL_ONLY,
    "assistance.GetBurden": INTERNAL_ONLY,
    "assistance.RecordPersons": INTERNAL_ONLY,
    "assistance.RecordPersonStatuses": INTERNAL_ONLY,
    "assistance.RecordBill": INTERNAL_ONLY,
    "assistance.ListBills": INTERNAL_ONLY,
    "assistance.AcceptApplication": INTERNAL_ONLY,
    "assistance.GetApplication": INTERNAL_ONLY,
    "assistance.ListApplications": INTERNAL_ONLY,
    "assistance.DecideApplication": INTERNAL_ONLY,
    "assistance.SupplyDocument": INTERNAL_ONLY,
    "assistance.CreateSecondaryRun": INTERNAL_ONLY,
    "assistance.GetSecondaryRun": INTERNAL_ONLY,
    "assistance.ListSecondaryRuns": INTERNAL_ONLY,
    "assistance.ListSecondaryRunEntries": INTERNAL_ONLY,
    "assistance.ApproveSecondaryRun": INTERNAL_ONLY,
    "assistance.RunScreening": INTERNAL_ONLY,
    "assistance.GetScreeningRun": INTERNAL_ONLY,
    "assistance.ListScreeningRuns": INTERNAL_ONLY,
    "assistance.ListScreeningOffers": INTERNAL_ONLY,
    "assistance.GetScreeningOffer": INTERNAL_ONLY,
    "assistance.ConfirmScreeningOffer": INTERNAL_ONLY,
    "assistance.ListWarnings": INTERNAL_ONLY,
    "assistance.GetWarning": INTERNAL_ONLY,
    "assistance.RecordWarningDecisions": INTERNAL_ONLY,
    "assistance.GetReport": INTERNAL_ONLY,
}
"""Method → the callers admitted past its permission check."""

ANSWERED_OK_EMPTY: Final = frozenset(
    {
        "enrollment.ListPersons",
        "datashare.ListAuditEvents",
        # An agency's (or clerk's) read of these two is audited, purpose empty: the one
        # row an empty request writes, but for AuthenticateConsoleUser's failed login.
        "datashare.ListRosterSubmissions",
        "datashare.ListComparisons",
        "datashare.ListWarnings",  # the platform's read: an agency must give a purpose
        "datashare.ListConsoleUsers",
        "datashare.ListAgencyClients",
        "settlement.GetHospital",  # a hospital's own
        "settlement.ListHospitals",
        "assistance.GetServiceInfo",
        "assistance.RecordSettlementEvents",  # no events: nothing recorded
        "assistance.ListApplications",
        "assistance.ListSecondaryRuns",
        "assistance.ListScreeningRuns",
    }
)
"""The methods an admitted caller's empty request succeeds at (by some admitted caller):
reads, and one write of a batch that records nothing when the batch is empty. Every
other write refuses an empty request as bad input."""

REFUSALS: Final = frozenset({grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.PERMISSION_DENIED})
CREDENTIAL_REASONS: Final = frozenset({"BAD_CREDENTIALS", "LOCKED"})
"""AuthenticateConsoleUser's UNAUTHENTICATED for the credentials it was asked to check:
its answer to an admitted caller, not a refusal of the caller."""
PAST_THE_CHECK: Final = frozenset(
    {
        grpc.StatusCode.OK,
        grpc.StatusCode.INVALID_ARGUMENT,
        grpc.StatusCode.NOT_FOUND,
        grpc.StatusCode.FAILED_PRECONDITION,
        grpc.StatusCode.UNAUTHENTICATED,  # with a credential reason only
    }
)


@dataclass(frozen=True)
class Answer:
    code: grpc.StatusCode
    reason: str
    message: str

    @property
    def refused(self) -> bool:
        return self.code in REFUSALS and self.reason not in CREDENTIAL_REASONS

    def __str__(self) -> str:
        return f"{self.code.name} {self.reason}: {self.message[:120]}"


def grpc_methods() -> Iterator[tuple[str, MethodDescriptor]]:
    """(service's short name, method) of every method the four services declare."""
    for name, file in FILES.items():
        for service in file.services_by_name.values():
            for method in service.methods:
                yield name, method


def _bytes(message: Any) -> bytes:
    data: bytes = message.SerializeToString()
    return data


def call_empty(channel: grpc.Channel, method: MethodDescriptor, metadata: Metadata) -> Answer:
    """The method called with an empty request (an empty stream for a client stream)."""
    path = f"/{method.containing_service.full_name}/{method.name}"
    empty = message_factory.GetMessageClass(method.input_type)()
    try:
        if method.client_streaming:
            channel.stream_unary(path, request_serializer=_bytes)(
                iter(()), metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            )
        elif method.server_streaming:
            list(
                channel.unary_stream(path, request_serializer=_bytes)(
                    empty, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
                )
            )
        else:
            channel.unary_unary(path, request_serializer=_bytes)(
                empty, metadata=metadata, timeout=CALL_TIMEOUT_SECONDS
            )
    except grpc.RpcError as error:
        status = decode_status(error)  # type: ignore[arg-type]
        return Answer(status.code, status.reason, status.message)
    return Answer(grpc.StatusCode.OK, "OK", "")


def test_each_grpc_caller_is_admitted_to_the_methods_of_its_kind_only(
    platform: Platform,
) -> None:
    declared = {f"{service}.{method.name}": method for service, method in grpc_methods()}
    assert sorted(declared) == sorted(GRPC_ADMITTED), (
        "every RPC needs an entry in GRPC_ADMITTED (and only RPCs that exist): "
        f"missing {sorted(set(declared) - set(GRPC_ADMITTED))}, "
        f"gone {sorted(set(GRPC_ADMITTED) - set(declared))}"
    )
    channels = {name: platform.services[name].channel() for name in FILES}
    answers: dict[tuple[str, str], Answer] = {}
    for name, method in grpc_methods():
        for caller, metadata in GRPC_CALLERS.items():
            if caller in HUB_ONLY and name != "datashare":
                continue
            answers[f"{name}.{method.name}", caller] = call_empty(channels[name], method, metadata)

    wrong = [
        f"{method} as {caller}: {answer}"
        for (method, caller), answer in answers.items()
        if answer.refused == (caller in GRPC_ADMITTED[method])
        or not (answer.refused or answer.code in PAST_THE_CHECK)
    ]
    assert not wrong, "\n".join(["admitted (or refused) against GRPC_ADMITTED:", *wrong])
    # Anyone without the token of a caller the service knows is asked who they are.
    unauthenticated = [
        f"{method} as {caller}: {answer}"
        for (method, caller), answer in answers.items()
        if caller in ("anonymous", "wrong_token") and answer.code != grpc.StatusCode.UNAUTHENTICATED
    ]
    assert not unauthenticated, "\n".join(unauthenticated)
    succeeded = {
        method for (method, _), answer in answers.items() if answer.code == grpc.StatusCode.OK
    }
    assert succeeded == ANSWERED_OK_EMPTY, (
        f"empty requests that now succeed: {sorted(succeeded - ANSWERED_OK_EMPTY)}; "
        f"no longer: {sorted(ANSWERED_OK_EMPTY - succeeded)}"
    )


# --- HTTP --------------------------------------------------------------------------------

SERVED: Final = "served"
"""Past the credentials' check: anything but 401, 403 or the way to the login page, and
not a server error (a 422 for an empty form, a 404 for an id no record has...)."""
UNAUTHENTICATED: Final = "unauthenticated"
"""401 application/problem+json: the hospitals' API asks for a hospital's key."""
LOGIN: Final = "login"
"""The console without a session: a page redirected (303) to the login form with the page
to come back to (``next=``), an action answered 401 ("log in again")."""
FORBIDDEN: Final = "forbidden"
"""403: the session's role lacks the permission."""

HTTP_CALLERS: Final[dict[str, dict[str, str]]] = {
    "anonymous": {},
    "wrong_key": {"Authorization": "Bearer not-a-doudi-key"},
    "internal_token": {"Authorization": f"Bearer {LOCAL_INTERNAL_TOKEN}"},
    "agency_key": {"Authorization": f"Bearer {demo.CIVIL_AFFAIRS_KEY}"},
    "hospital_key": {"Authorization": f"Bearer {demo.HOSPITALS[0].api_key}"},
}
ACCOUNTS: Final = tuple(demo.DEMO_CONSOLE_USERS)
"""The demo console accounts: one of each staff role; clerks of civil affairs, the poverty
office and the trade union (no warnings go to it)."""
STAFF: Final = frozenset({"caseworker", "analyst", "supervisor", "admin"})
EVERYONE: Final = frozenset(ACCOUNTS)


@dataclass(frozen=True)
class Access:
    """Who a route serves: ``callers`` the outcome for each caller without a session (by
    default ``without_session`` for all); ``accounts`` the console accounts it serves
    (the others: 403), None when it is not tried with a session; ``permission`` the
    PERMISSIONS entry the accounts follow."""

    without_session: str
    accounts: frozenset[str] | None = None
    permission: str | None = None
    callers: Mapping[str, str] | None = None

    def expected(self, caller: str) -> str:
        if caller in HTTP_CALLERS:
            return (self.callers or {}).get(caller, self.without_session)
        assert self.accounts is not None
        return SERVED if caller in self.accounts else FORBIDDEN


PUBLIC: Final = Access(SERVED, EVERYONE)
HOSPITAL_KEY: Final = Access(UNAUTHENTICATED, callers={"hospital_key": SERVED})
LOGIN_FORM: Final = Access(SERVED)
"""The login form's POST: tried without a session (each account logs in through it)."""


def holders(permission: str) -> frozenset[str]:
    """The demo accounts whose role holds ``permission`` (gateway/console/roles.py)."""
    users = demo.DEMO_CONSOLE_USERS
    return frozenset(
        username
        for username in ACCOUNTS
        if may(users[username].role, permission, users[username].agency or "")
    )


WINDOW: Final = frozenset({"caseworker", "supervisor"})
"""The roles at the window: case workers and supervisors."""
WARNED_CLERKS: Final = frozenset({"civil", "poverty"})
"""The clerks of the agencies the dual early warning goes to."""

CONSOLE_PERMISSIONS: Final[dict[str, frozenset[str]]] = {
    "dashboard": STAFF,
    "warnings": STAFF | WARNED_CLERKS,
    "decide_warning": WARNED_CLERKS,
    "persons": EVERYONE,
    "applications": STAFF,
    "accept_application": WINDOW,
    "decide_application": WINDOW,
    "secondary": STAFF - {"admin"},
    "create_secondary_run": WINDOW,
    "approve_secondary_run": frozenset({"supervisor"}),
    "download_bank_file": frozenset({"supervisor"}),
    "screening": STAFF - {"admin"},
    "run_screening": WINDOW,
    "confirm_offer": WINDOW,
    "rosters": EVERYONE,
    "compare_rosters": WINDOW,
    "settlements": STAFF,
    "packs": EVERYONE,
}
"""A console permission (gateway/console/roles.py) → the demo accounts holding it."""


def console(permission: str) -> Access:
    """A console route needing ``permission``: the login page without a session."""
    return Access(LOGIN, CONSOLE_PERMISSIONS[permission], permission)


ROUTES: Final[dict[tuple[str, str], Access]] = {
    # The hospitals' API.
    ("POST", "/v1/settlements"): HOSPITAL_KEY,
    ("POST", "/v1/settlements/preview"): HOSPITAL_KEY,
    ("GET", "/v1/settlements/{settlement_id}"): HOSPITAL_KEY,
    ("POST", "/v1/settlements/{settlement_id}/reversal"): HOSPITAL_KEY,
    ("GET", "/v1/settlements"): HOSPITAL_KEY,
    ("GET", "/v1/clearing"): HOSPITAL_KEY,
    ("GET", "/v1/persons/{person_id}/eligibility"): HOSPITAL_KEY,
    ("POST", "/v1/admissions"): HOSPITAL_KEY,
    ("GET", "/v1/admissions/{admission_id}"): HOSPITAL_KEY,
    ("POST", "/v1/admissions/{admission_id}/cancellation"): HOSPITAL_KEY,
    # Probes and documentation.
    ("GET", "/healthz"): PUBLIC,
    ("GET", "/readyz"): PUBLIC,
    ("GET", "/livez"): PUBLIC,
    ("GET", "/openapi.json"): PUBLIC,
    ("GET", "/"): PUBLIC,
    ("GET", "/docs"): PUBLIC,
    ("GET", "/redoc"): PUBLIC,
    ("GET", "/docs-assets"): PUBLIC,
    # The console.
    ("GET", "/console/static/app"): PUBLIC,
    ("GET", "/console/static/vendor/{name}"): PUBLIC,
    ("GET", "/console/login"): PUBLIC,
    ("POST", "/console/login"): LOGIN_FORM,
    ("GET", "/console/language/{locale}"): PUBLIC,
    ("GET", "/console/"): PUBLIC,  # a redirect: to the role's first page, or to log in
    ("POST", "/console/logout"): console("packs"),  # every role's
    ("GET", "/console/dashboard"): console("dashboard"),
    ("GET", "/console/dashboard/report.{file_format}"): console("dashboard"),
    ("GET", "/console/warnings"): console("warnings"),
    ("GET", "/console/warnings/{warning_id}"): console("warnings"),
    ("POST", "/console/warnings/{warning_id}/acknowledge"): console("decide_warning"),
    ("POST", "/console/warnings/{warning_id}/decide"): console("decide_warning"),
    ("GET", "/console/persons"): console("persons"),
    ("POST", "/console/persons"): console("persons"),
    ("GET", "/console/persons/{reference}"): console("persons"),
    ("GET", "/console/applications"): console("applications"),
    ("GET", "/console/applications/new"): console("accept_application"),
    ("POST", "/console/applications"): console("accept_application"),
    ("GET", "/console/applications/{application_id}"): console("applications"),
    ("POST", "/console/applications/{application_id}/supply"): console("accept_application"),
    ("POST", "/console/applications/{application_id}/decide"): console("decide_application"),
    ("GET", "/console/secondary"): console("secondary"),
    ("POST", "/console/secondary"): console("create_secondary_run"),
    ("GET", "/console/secondary/{run_id}"): console("secondary"),
    ("POST", "/console/secondary/{run_id}/approve"): console("approve_secondary_run"),
    ("GET", "/console/secondary/{run_id}/bank.{file_format}"): console("download_bank_file"),
    ("GET", "/console/screening"): console("screening"),
    ("POST", "/console/screening"): console("run_screening"),
    ("GET", "/console/screening/{run_id}"): console("screening"),
    ("GET", "/console/screening/offers/{offer_id}"): console("screening"),
    ("POST", "/console/screening/offers/{offer_id}/confirm"): console("confirm_offer"),
    ("GET", "/console/rosters"): console("rosters"),
    ("POST", "/console/rosters/compare"): console("compare_rosters"),
    ("GET", "/console/rosters/comparisons/{comparison_id}"): console("rosters"),
    ("GET", "/console/rosters/comparisons/{comparison_id}/export.{file_format}"): console(
        "rosters"
    ),
    ("POST", "/console/settlements"): console("settlements"),
    ("GET", "/console/settlements"): console("settlements"),
    ("GET", "/console/packs"): console("packs"),
    ("GET", "/console/packs/{pack_id}"): console("packs"),
    ("POST", "/console/packs/{pack_id}/preview"): console("packs"),
}
"""(method, path) → who the route serves; a static files' mount is listed as a GET of its
path."""

NO_SUCH_ID: Final = str(2**62)
"""An id in an address that no record has (a positive int64, as the console takes)."""
STATIC_FILES: Final = {
    "/docs-assets": "swagger-ui.css",
    "/console/static/app": "console.css",
}
"""A file of each static mount, requested for the mount."""


BAD_PATH_VALUES: Final = {
    **dict.fromkeys(("warning_id", "application_id", "run_id", "offer_id", "comparison_id"), "0"),
    "settlement_id": "x" * 100,
    "reference": "not-a-reference",
    "pack_id": "no-such-pack",
    "file_format": "exe",
    "name": "no-such-file.js",
    "locale": "xx",
}
"""Path parameters a route refuses: a caller without credentials must still be told to
show them first (401, the login page), or be served (a public route's 404)."""
READ_BEFORE_AUTHORISING: Final[frozenset[tuple[str, str]]] = frozenset()
"""The routes that answer a refused path parameter before the credentials' check."""


def path_values() -> dict[str, str]:
    """What each path parameter of a route is filled with."""
    person = demo.REGISTERED_POOR.person_id
    return {
        "settlement_id": str(uuid.uuid4()),
        "admission_id": str(uuid.uuid4()),
        "person_id": person,
        "name": sorted(vendor.VENDOR_FILES)[0],
        "locale": "en",
        "file_format": "csv",
        "warning_id": NO_SUCH_ID,
        "application_id": NO_SUCH_ID,
        "run_id": NO_SUCH_ID,
        "offer_id": NO_SUCH_ID,
        "comparison_id": NO_SUCH_ID,
        "reference": PersonReferences(LOCAL_CONSOLE_SECRET).seal(person),
        "pack_id": next(iter(PackRegistry.load())).id,
    }


def http_routes() -> Iterator[tuple[str, str]]:
    """(method, path) of every route of the gateway, the console's included."""
    app = create_app(Settings(environment="local"))

    def walk(routes: Iterable[BaseRoute], prefix: str) -> Iterator[tuple[str, str]]:
        for route in routes:
            # FastAPI 0.16x keeps a router included without a prefix (gateway.console.app)
            # whole; older ones copied its routes.
            included = getattr(route, "original_router", None)
            if included is not None:
                yield from walk(included.routes, prefix)
            elif isinstance(route, Mount):
                inner = getattr(route.app, "routes", None)
                if inner is None:  # static files
                    yield "GET", prefix + route.path
                else:
                    yield from walk(inner, prefix + route.path)
            else:
                for method in sorted(set(getattr(route, "methods", None) or ()) - {"HEAD"}):
                    yield method, prefix + getattr(route, "path", "")

    yield from walk(app.routes, "")


def outcome(answer: httpx.Response) -> str:
    status = answer.status_code
    location = answer.headers.get("location", "")
    if status == 401 and answer.headers.get("content-type", "").startswith(PROBLEM_JSON):
        return UNAUTHENTICATED
    # The console's refusal names the page to come back to; logging out, the language's
    # switch and the console's home redirect to the bare form as their answer.
    if (status == 303 and location.startswith("/console/login?next=")) or (
        status == 401 and answer.request.url.path.startswith("/console/")
    ):
        return LOGIN
    if status == 403:
        return FORBIDDEN
    if status == 401 or status >= 500:
        return f"{status}: {answer.text[:200]}"
    return SERVED


def send(
    client: httpx.Client, method: str, route: str, values: Mapping[str, str], csrf: str = ""
) -> httpx.Response:
    path = route.format_map(values)
    if route in STATIC_FILES:
        path = f"{route}/{STATIC_FILES[route]}"
    if method == "GET":
        return client.get(path)
    data = {"csrf_token": csrf}
    if route == "/console/login":  # the login form's own token, from the form
        data = {"csrf_token": csrf_of(client.get(route).text)}
    return client.post(path, data=data)


def log_in(platform: Platform, username: str) -> tuple[httpx.Client, str]:
    """A client of the gateway logged in to the console through the login form, and the
    session's CSRF token."""
    client = platform.client()
    form = client.get("/console/login")
    answer = client.post(
        "/console/login",
        data={
            "username": username,
            "password": demo.DEMO_CONSOLE_USERS[username].password,
            "csrf_token": csrf_of(form.text),
        },
    )
    assert answer.status_code == 303, answer.text
    page = client.get("/console/packs")
    assert page.status_code == 200, page.text
    return client, csrf_of(page.text)


def test_each_route_serves_the_callers_and_roles_it_should_only(platform: Platform) -> None:
    found = sorted(set(http_routes()))
    assert found == sorted(ROUTES), (
        "every route needs an entry in ROUTES (and only routes that exist): "
        f"missing {sorted(set(found) - set(ROUTES))}, gone {sorted(set(ROUTES) - set(found))}"
    )
    drifted = {
        permission: sorted(accounts ^ holders(permission))
        for permission, accounts in CONSOLE_PERMISSIONS.items()
        if accounts != holders(permission)
    }
    assert not drifted, f"CONSOLE_PERMISSIONS differs from roles.PERMISSIONS: {drifted}"

    values = path_values()
    observed: dict[tuple[str, str, str], str] = {}
    for caller, headers in HTTP_CALLERS.items():
        client = platform.client()
        client.headers.update(headers)
        for method, route in ROUTES:
            observed[method, route, caller] = outcome(send(client, method, route, values))
    for username in ACCOUNTS:
        client, csrf = log_in(platform, username)
        # Logging out last: the session ends with it.
        for method, route in sorted(ROUTES, key=lambda route: route[1] == "/console/logout"):
            if ROUTES[method, route].accounts is not None:
                answer = send(client, method, route, values, csrf)
                observed[method, route, username] = outcome(answer)
        assert outcome(client.get("/console/packs")) == LOGIN, "the session outlived logout"

    wrong = [
        f"{method} {route} as {caller}: {seen}, not {ROUTES[method, route].expected(caller)}"
        for (method, route, caller), seen in observed.items()
        if seen != ROUTES[method, route].expected(caller)
    ]
    assert not wrong, "\n".join(wrong)

    anonymous = platform.client()
    bad = {**values, **BAD_PATH_VALUES}
    early = {
        (method, route)
        for method, route in ROUTES
        if "{" in route
        and outcome(send(anonymous, method, route, bad))
        != ROUTES[method, route].expected("anonymous")
    }
    assert early == READ_BEFORE_AUTHORISING, (
        f"now read before the credentials: {sorted(early - READ_BEFORE_AUTHORISING)}; "
        f"no longer: {sorted(READ_BEFORE_AUTHORISING - early)}"
    )
