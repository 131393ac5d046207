"""The console's tests share this: the whole platform with the demo data and its cases (a
warning, an application, a secondary-assistance recipient), a console account of each
role, and a logged-in HTTP client.

    with console_platforms(tmp_path_factory, "console") as on:
        platform = on("sqlite")
        client = login(platform, "caseworker")
"""

from __future__ import annotations

import contextlib
import re
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from datetime import date, datetime
from typing import Final
from zoneinfo import ZoneInfo

import grpc
import httpx
import pytest

from doudi.assistance.v1 import assistance_pb2
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.cli import demo
from doudi.datashare.v1 import datashare_pb2
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from gateway.console.references import PersonReferences
from gateway.settings import LOCAL_CONSOLE_SECRET
from tests.platform import Platform, running_platform
from tests.services import INTERNAL

TODAY: Final = datetime.now(ZoneInfo("Asia/Shanghai")).date()
YEAR: Final = TODAY.year
XIXIA: Final = "411323"
LINZHI: Final = "540400"


@dataclass(frozen=True)
class Account:
    username: str
    role: int
    display_name: str
    agency: str = ""
    regions: tuple[str, ...] = ()

    @property
    def password(self) -> str:
        return f"correct horse {self.username}"


ACCOUNTS: Final = {
    account.username: account
    for account in (
        Account("caseworker", datashare_pb2.CONSOLE_ROLE_CASE_WORKER, "王芳"),
        Account("analyst", datashare_pb2.CONSOLE_ROLE_ANALYST, "陈明"),
        Account("supervisor", datashare_pb2.CONSOLE_ROLE_SUPERVISOR, "赵丽"),
        Account("admin", datashare_pb2.CONSOLE_ROLE_ADMINISTRATOR, "周强"),
        Account(
            "civil", datashare_pb2.CONSOLE_ROLE_AGENCY_CLERK, "民政李", "civil_affairs", (XIXIA,)
        ),
        Account(
            "poverty",
            datashare_pb2.CONSOLE_ROLE_AGENCY_CLERK,
            "乡村振兴吴",
            "poverty_office",
            (XIXIA,),
        ),
        # A clerk of another county's civil affairs: none of Xixia's data is its own.
        Account(
            "linzhi",
            datashare_pb2.CONSOLE_ROLE_AGENCY_CLERK,
            "林芝民政",
            "civil_affairs",
            (LINZHI,),
        ),
    )
}


def create_accounts(platform: Platform) -> None:
    hub = DatashareServiceStub(platform.services["datashare"].channel())
    for account in ACCOUNTS.values():
        hub.CreateConsoleUser(
            datashare_pb2.CreateConsoleUserRequest(
                username=account.username,
                display_name=account.display_name,
                role=account.role,  # type: ignore[arg-type]
                agency=account.agency,
                regions=account.regions,
                password=account.password,
            ),
            metadata=INTERNAL,
        )


def warning_of(platform: Platform, household_id: str, timeout: float = 30.0) -> int:
    """The id of the household's warning once the hub has it (it travels from assistance
    in the background)."""
    assistance = AssistanceServiceStub(platform.services["assistance"].channel())
    hub = DatashareServiceStub(platform.services["datashare"].channel())
    deadline = time.monotonic() + timeout
    while True:
        found = [
            warning
            for warning in assistance.ListWarnings(
                assistance_pb2.ListWarningsRequest(region=XIXIA, year=YEAR), metadata=INTERNAL
            ).warnings
            if warning.household_id == household_id
        ]
        if found:
            try:
                hub.GetWarning(
                    datashare_pb2.GetWarningRequest(warning_id=found[0].warning_id),
                    metadata=INTERNAL,
                )
                return found[0].warning_id
            except grpc.RpcError as error:
                if error.code() != grpc.StatusCode.NOT_FOUND:
                    raise
        if time.monotonic() > deadline:
            raise AssertionError(f"no warning for household {household_id} reached the hub")
        time.sleep(0.2)


@contextlib.contextmanager
def console_platforms(
    tmp_path_factory: pytest.TempPathFactory,
    name: str,
    gateway_env: Mapping[str, str] | None = None,
) -> Iterator[Callable[[str], Platform]]:
    """A module's platforms, on a backend when first asked: the demo data and its cases for
    this year, and the console accounts of :data:`ACCOUNTS`."""
    started: dict[str, Platform] = {}
    # A disabled account's session ends within this (30 s in production): tests wait less.
    env = {"DOUDI_CONSOLE_ACCOUNT_CACHE_SECONDS": "1", **(gateway_env or {})}
    with contextlib.ExitStack() as stack:

        def on(backend: str) -> Platform:
            if backend not in started:
                directory = tmp_path_factory.mktemp(f"{name}-{backend}")
                platform = stack.enter_context(running_platform(directory, backend, env))
                channels = {
                    service: platform.services[service].channel()
                    for service in ("enrollment", "datashare", "settlement", "assistance")
                }
                token = INTERNAL[0][1].removeprefix("Bearer ")
                demo.load(
                    enrollment=channels["enrollment"],
                    datashare=channels["datashare"],
                    settlement=channels["settlement"],
                    internal_token=token,
                    year=YEAR,
                )
                demo.load_cases(**channels, internal_token=token, year=YEAR, today=TODAY)
                create_accounts(platform)
                warning_of(platform, demo.WARNED.household_id)
                started[backend] = platform
            return started[backend]

        yield on


_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


def csrf_of(html: str) -> str:
    found = _CSRF.search(html)
    assert found is not None, "no CSRF token on the page"
    return found.group(1)


def console_client(platform: Platform) -> httpx.Client:
    return httpx.Client(base_url=f"{platform.base_url}/console", timeout=60, follow_redirects=False)


def login(platform: Platform, username: str, password: str | None = None) -> httpx.Client:
    """A client logged in as ``username`` (its password from :data:`ACCOUNTS` unless given)."""
    client = console_client(platform)
    answer = try_login(client, username, password or ACCOUNTS[username].password)
    assert answer.status_code == 303, answer.text
    return client


def try_login(client: httpx.Client, username: str, password: str) -> httpx.Response:
    form = client.get("/login")
    assert form.status_code == 200
    return client.post(
        "/login",
        data={"username": username, "password": password, "csrf_token": csrf_of(form.text)},
    )


def page_csrf(client: httpx.Client, path: str = "/packs") -> str:
    """The session's CSRF token, as a page of the console carries it."""
    answer = client.get(path)
    assert answer.status_code == 200, answer.text
    return csrf_of(answer.text)


def today() -> date:
    return TODAY


_REFERENCES: Final = PersonReferences(LOCAL_CONSOLE_SECRET)


def person_path(person_id: str) -> str:
    """The path (under /console) of a person's page, its identity number sealed as the
    console seals it (the local secret of every test platform)."""
    return f"/persons/{_REFERENCES.seal(person_id)}"
