"""The console over HTTP, against the whole platform on each backend: logging in per role,
lock-out, sessions that expire, CSRF, what each role may reach, an agency clerk held to its
agency's data, and every view of a person's page in the audit.

The browser's side (pages drawn, keyboard, accessibility, the workflows clicked through)
is tests/test_console_browser.py.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from dataclasses import asdict
from typing import Any

import httpx
import pytest
from itsdangerous import TimestampSigner, URLSafeTimedSerializer

from doudi.assistance.v1 import assistance_pb2
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.cli import demo
from doudi.datashare.v1 import datashare_pb2
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from gateway.console.sessions import SESSION_COOKIE, Session
from gateway.settings import LOCAL_CONSOLE_SECRET
from tests.console_support import (
    ACCOUNTS,
    XIXIA,
    YEAR,
    console_client,
    console_platforms,
    csrf_of,
    login,
    page_csrf,
    person_path,
    try_login,
    warning_of,
)
from tests.platform import Platform
from tests.services import INTERNAL


@pytest.fixture(scope="module")
def platforms(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Callable[[str], Platform]]:
    with console_platforms(tmp_path_factory, "console") as on:
        yield on


@pytest.fixture
def platform(platforms: Callable[[str], Platform], backend: str) -> Platform:
    return platforms(backend)


MENUS = {
    "caseworker": {"Dashboard", "Warnings", "Applications", "Secondary assistance"},
    "analyst": {"Dashboard", "Warnings", "Settlements"},
    "supervisor": {"Dashboard", "Secondary assistance", "Screening"},
    "admin": {"Dashboard", "Policy packs"},
    "civil": {"Warnings", "Rosters", "Persons"},
}


@pytest.mark.parametrize("username", sorted(MENUS))
def test_each_role_logs_in_to_its_home_page_with_its_menu(
    platform: Platform, username: str
) -> None:
    client = login(platform, username)
    client.cookies.set("doudi_lang", "en")
    home = client.get("/", follow_redirects=True)
    assert home.status_code == 200
    assert ACCOUNTS[username].display_name in home.text
    for entry in MENUS[username]:
        assert f">{entry}</a>" in home.text, (username, entry)
    if username == "civil":
        assert home.url.path == "/console/warnings"
        assert ">Dashboard</a>" not in home.text
    else:
        assert home.url.path == "/console/dashboard"


def test_the_console_speaks_chinese_unless_english_is_chosen(platform: Platform) -> None:
    client = login(platform, "caseworker")
    page = client.get("/warnings")
    assert 'lang="zh-CN"' in page.text
    assert "预警" in page.text
    switched = client.get("/language/en?next=/console/warnings")
    assert switched.status_code == 303
    assert switched.headers["location"] == "/console/warnings"
    english = client.get("/warnings")
    assert 'lang="en"' in english.text
    assert "Warnings" in english.text


def test_a_wrong_password_is_refused_and_says_nothing_of_whether_the_user_exists(
    platform: Platform,
) -> None:
    client = console_client(platform)
    wrong = try_login(client, "caseworker", "not the password at all")
    unknown = try_login(client, "nobody-here", "not the password at all")
    assert wrong.status_code == unknown.status_code == 401
    assert "用户名或密码错误" in wrong.text
    assert "用户名或密码错误" in unknown.text
    assert SESSION_COOKIE not in client.cookies


def test_repeated_failures_lock_the_account_until_an_administrator_resets_it(
    platform: Platform,
) -> None:
    hub = DatashareServiceStub(platform.services["datashare"].channel())
    hub.CreateConsoleUser(
        datashare_pb2.CreateConsoleUserRequest(
            username="locked-out",
            display_name="试锁定",
            role=datashare_pb2.CONSOLE_ROLE_CASE_WORKER,
            password="the right password",
        ),
        metadata=INTERNAL,
    )
    client = console_client(platform)
    for _ in range(5):
        assert try_login(client, "locked-out", "a wrong password").status_code == 401
    locked = try_login(client, "locked-out", "the right password")
    assert locked.status_code == 401
    assert "已锁定" in locked.text
    assert SESSION_COOKIE not in client.cookies
    hub.ResetConsolePassword(
        datashare_pb2.ResetConsolePasswordRequest(
            username="locked-out", password="a new right password"
        ),
        metadata=INTERNAL,
    )
    assert try_login(client, "locked-out", "a new right password").status_code == 303


def test_a_change_without_the_sessions_csrf_token_is_refused_and_changes_nothing(
    platform: Platform,
) -> None:
    assistance = AssistanceServiceStub(platform.services["assistance"].channel())

    def count() -> int:
        return len(
            assistance.ListApplications(
                assistance_pb2.ListApplicationsRequest(region=XIXIA, page_size=1000),
                metadata=INTERNAL,
            ).applications
        )

    before = count()
    client = login(platform, "caseworker")
    other = login(platform, "supervisor")
    form = {
        "person_id": demo.NEIGHBOUR.person_id,
        "household_id": demo.NEIGHBOUR.household_id,
        "region": XIXIA,
        "kind": "temporary",
        "accepted_on": str(YEAR) + "-01-05",
        "received": "申请书",
        "request_id": "csrf-test",
    }
    assert client.post("/applications", data=form).status_code == 403
    assert client.post("/applications", data={**form, "csrf_token": "forged"}).status_code == 403
    foreign = page_csrf(other)
    assert client.post("/applications", data={**form, "csrf_token": foreign}).status_code == 403
    assert count() == before
    mine = page_csrf(client)
    made = client.post("/applications", data={**form, "csrf_token": mine})
    assert made.status_code == 303, made.text
    assert count() == before + 1
    # the same form sent again (a double click) accepts nothing new
    again = client.post("/applications", data={**form, "csrf_token": mine})
    assert again.status_code == 303
    assert again.headers["location"] == made.headers["location"]
    assert count() == before + 1


def test_logging_in_needs_the_login_forms_own_token(platform: Platform) -> None:
    client = console_client(platform)
    answer = client.post(
        "/login",
        data={"username": "caseworker", "password": ACCOUNTS["caseworker"].password},
    )
    assert answer.status_code == 403
    assert SESSION_COOKIE not in client.cookies


def _cookie(session: Session, signed_at: float) -> str:
    """A session cookie as the gateway would have signed it at ``signed_at``."""

    class Then(TimestampSigner):
        def get_timestamp(self) -> int:
            return int(signed_at)

    serializer = URLSafeTimedSerializer(
        LOCAL_CONSOLE_SECRET, salt="doudi-console-session", signer=Then
    )
    return serializer.dumps(asdict(session))


def test_a_session_expires_when_idle_and_at_its_maximum(platform: Platform) -> None:
    client = login(platform, "caseworker")
    session_value = client.cookies[SESSION_COOKIE]
    assert client.get("/applications").status_code == 200
    now = time.time()
    user = Session.begin("caseworker", "王芳", "case_worker", "", ())
    for cookie in (
        _cookie(user, now - 31 * 60),  # idle past 30 minutes
        _cookie(
            Session(
                **{
                    **{f: getattr(user, f) for f in Session.__slots__},
                    "started": int(now) - 13 * 3600,
                }
            ),  # type: ignore[arg-type]
            now - 60,
        ),  # begun 13 hours ago, used a minute ago
    ):
        stale = console_client(platform)
        stale.cookies.set(SESSION_COOKIE, cookie, path="/console")
        answer = stale.get("/applications")
        assert answer.status_code == 303
        assert answer.headers["location"].startswith("/console/login?next=")
    fresh = console_client(platform)
    fresh.cookies.set(SESSION_COOKIE, _cookie(user, now - 60), path="/console")
    assert fresh.get("/applications").status_code == 200
    assert session_value  # the real login's session still works
    assert client.get("/applications").status_code == 200


def test_logging_out_ends_the_session(platform: Platform) -> None:
    client = login(platform, "analyst")
    cookie = client.cookies[SESSION_COOKIE]
    token = page_csrf(client)
    assert client.post("/logout", data={"csrf_token": token}).status_code == 303
    # the browser forgets the cookie; one kept aside still works until it expires, as a
    # signed cookie does, but the browser of the user no longer sends it
    assert SESSION_COOKIE not in client.cookies or client.cookies[SESSION_COOKIE] != cookie
    assert client.get("/dashboard").status_code == 303


def test_a_disabled_account_loses_its_session(platform: Platform) -> None:
    hub = DatashareServiceStub(platform.services["datashare"].channel())
    hub.CreateConsoleUser(
        datashare_pb2.CreateConsoleUserRequest(
            username="leaving",
            display_name="离职",
            role=datashare_pb2.CONSOLE_ROLE_ANALYST,
            password="a password for now",
        ),
        metadata=INTERNAL,
    )
    client = login(platform, "leaving", "a password for now")
    assert client.get("/dashboard").status_code == 200
    hub.DisableConsoleUser(
        datashare_pb2.DisableConsoleUserRequest(username="leaving"), metadata=INTERNAL
    )
    # the gateway trusts what it read of an account for DOUDI_CONSOLE_ACCOUNT_CACHE_SECONDS
    # (30 s; 1 s on the tests' platforms)
    deadline = time.monotonic() + 10
    while client.get("/dashboard").status_code == 200:
        assert time.monotonic() < deadline, "the disabled account kept its session"
        time.sleep(1)
    assert try_login(console_client(platform), "leaving", "a password for now").status_code == 401


@pytest.mark.parametrize(
    ("username", "method", "path"),
    [
        ("civil", "get", "/dashboard"),
        ("civil", "get", "/applications"),
        ("civil", "get", "/settlements"),
        ("civil", "post", "/secondary/1/approve"),
        ("civil", "post", "/applications"),
        ("caseworker", "post", "/secondary/1/approve"),
        ("caseworker", "get", "/secondary/1/bank.csv"),
        ("analyst", "post", "/applications"),
        ("analyst", "post", "/warnings/1/decide"),
        ("supervisor", "post", "/warnings/1/acknowledge"),
    ],
)
def test_a_role_cannot_reach_what_it_may_not_do(
    platform: Platform, username: str, method: str, path: str
) -> None:
    client = login(platform, username)
    data: dict[str, Any] = {"csrf_token": page_csrf(client)} if method == "post" else {}
    answer = client.request(method.upper(), path, data=data or None)
    assert answer.status_code == 403, answer.text


def test_a_clerk_cannot_open_another_regions_warning_nor_a_person_outside_its_data(
    platform: Platform,
) -> None:
    warning_id = warning_of(platform, demo.WARNED.household_id)
    own = login(platform, "civil")
    assert own.get(f"/warnings/{warning_id}").status_code == 200
    far = login(platform, "linzhi")
    refused = far.get(f"/warnings/{warning_id}")
    assert refused.status_code == 403
    assert far.get("/warnings/999999").status_code == 404
    outside = far.get(person_path(demo.WARNED.person_id), params={"reason": "curious"})
    assert outside.status_code == 403
    # its queue holds none of Xixia's warnings
    queue = far.get("/warnings")
    assert queue.status_code == 200
    assert f"/warnings/{warning_id}" not in queue.text
    assert f"/warnings/{warning_id}" in own.get("/warnings").text
    # Xixia's civil affairs certifies the household: the status is civil affairs', and
    # still none of Linzhi's civil affairs' business
    certified = own.post(
        f"/warnings/{warning_id}/decide",
        data={
            "csrf_token": page_csrf(own),
            "decision": "certify",
            "status": "low_income",
            "valid_from": f"{YEAR}-01-01",
        },
    )
    assert certified.status_code == 303, certified.text
    assert far.get(person_path(demo.WARNED.person_id), params={"reason": "x"}).status_code == 403
    mine = own.get(person_path(demo.WARNED.person_id), params={"reason": "the warning"})
    assert mine.status_code == 200
    assert "低收入" in mine.text


def test_every_view_of_a_persons_page_is_audited_with_who_whom_when_and_why(
    platform: Platform,
) -> None:
    hub = DatashareServiceStub(platform.services["datashare"].channel())
    person = demo.RECIPIENT.person_id

    def views() -> list[datashare_pb2.AuditEvent]:
        events = hub.ListAuditEvents(
            datashare_pb2.ListAuditEventsRequest(person_id=person, page_size=1000),
            metadata=INTERNAL,
        ).events
        return [event for event in events if event.method == "ConsolePersonView"]

    before = len(views())
    client = login(platform, "caseworker")
    asked = client.get(person_path(person))
    assert asked.status_code == 200
    assert 'name="reason_kind"' in asked.text  # the reason is asked first
    assert len(views()) == before
    started = time.time()
    page = client.get(
        person_path(person),
        params={"reason": "form", "reason_kind": "secondary", "reason_text": "run 7"},
    )
    assert page.status_code == 200
    assert demo.RECIPIENT.name in page.text
    assert person in page.text  # a case worker sees the number whole
    # the stay settled at the window, every layer in yuan, and the statuses in force
    assert "150,000.00" in page.text
    assert "低保" in page.text
    seen = views()
    assert len(seen) == before + 1
    event = seen[-1]
    assert event.caller == "console:caseworker"
    assert event.person_id == person
    assert "run 7" in event.purpose
    assert event.event_time.seconds >= int(started) - 5
    analyst = login(platform, "analyst")
    masked = analyst.get(person_path(person), params={"reason": "monthly figures check"})
    assert masked.status_code == 200
    assert person not in masked.text
    assert person[:6] + "********" + person[14:] in masked.text
    assert views()[-1].caller == "console:analyst"


def test_bad_input_answers_a_page_that_says_what_is_wrong(platform: Platform) -> None:
    client = login(platform, "caseworker")
    for path in (
        "/dashboard?year=abc",
        "/dashboard?year=1800",
        "/dashboard?month=13",
        "/dashboard?region=999999",
        "/warnings?kind=nonsense",
    ):
        answer = client.get(path)
        assert answer.status_code == 422, path
        assert answer.headers["content-type"].startswith("text/html")
    assert client.get("/no-such-page").status_code == 404
    assert client.get("/persons/made-up-reference").status_code == 404
    search = client.post("/persons", data={"csrf_token": page_csrf(client), "person_id": "12345"})
    assert search.status_code == 422
    assert "身份证号码无效" in search.text
    assert client.get("/applications/not-a-number").status_code == 422
    token = page_csrf(client)
    bad = client.post(
        "/applications",
        data={"csrf_token": token, "person_id": "123", "household_id": "", "accepted_on": "x"},
    )
    assert bad.status_code == 422
    assert "身份证号码无效" in bad.text


def test_the_dashboard_downloads_every_figure_as_csv_and_xlsx(platform: Platform) -> None:
    client = login(platform, "analyst")
    csv_file = client.get("/dashboard/report.csv", params={"region": XIXIA, "year": YEAR})
    assert csv_file.status_code == 200
    text = csv_file.content.decode("utf-8-sig")
    assert text.splitlines()[0].startswith('"指标"')
    assert "医疗总费用" in text
    xlsx = client.get("/dashboard/report.xlsx", params={"region": XIXIA, "year": YEAR})
    assert xlsx.status_code == 200
    assert xlsx.content[:2] == b"PK"


def test_console_pages_are_not_cached_nor_framed(platform: Platform) -> None:
    client = login(platform, "caseworker")
    page = client.get("/applications")
    assert page.headers["cache-control"] == "no-store"
    assert page.headers["x-frame-options"] == "DENY"
    assert "script-src 'self'" in page.headers["content-security-policy"]
    cookie = page.headers.get("set-cookie", "") or ""
    del cookie
    login_page = httpx.get(f"{platform.base_url}/console/login")
    assert "HttpOnly" in login_page.headers["set-cookie"]
    assert csrf_of(login_page.text)


def test_a_persons_page_shows_the_applications_and_what_a_clerk_may_not_see(
    platform: Platform,
) -> None:
    caseworker = login(platform, "caseworker")
    page = caseworker.get(person_path(demo.WARNED.person_id), params={"reason": "application"})
    assert page.status_code == 200
    assert 'id="applications-title"' in page.text
    assert "/console/applications/" in page.text
    assert "100,000.00" in page.text  # her stay
    clerk = login(platform, "civil")
    seen = clerk.get(person_path(demo.WARNED.person_id), params={"reason": "the warning"})
    assert seen.status_code == 200
    assert 'id="applications-title"' not in seen.text
    assert 'id="settlements-title"' not in seen.text
    assert 'id="enrolments-title"' not in seen.text


def test_a_comparisons_export_shows_identity_numbers_as_the_role_sees_them(
    platform: Platform,
) -> None:
    from tests.test_rosters import row, submit

    hub = DatashareServiceStub(platform.services["datashare"].channel())
    uninsured = "411323198807210020"  # on the poverty office's roster, in no register
    submit(hub, [row(1, uninsured, name="赵小梅")], as_of=f"{YEAR}-01-02")
    caseworker = login(platform, "caseworker")
    compared = caseworker.post(
        "/rosters/compare",
        data={"csrf_token": page_csrf(caseworker), "region": XIXIA, "year": YEAR},
    )
    assert compared.status_code == 303, compared.text
    path = compared.headers["location"].removeprefix("/console") + "/export.csv"
    whole = caseworker.get(path, params={"class": "not_insured"})
    assert whole.status_code == 200
    assert uninsured in whole.content.decode("utf-8-sig")
    for username in ("analyst", "admin"):
        masked = login(platform, username).get(path, params={"class": "not_insured"})
        assert masked.status_code == 200
        text = masked.content.decode("utf-8-sig")
        assert uninsured not in text, username
        assert uninsured[:6] + "********" + uninsured[14:] in text, username


def test_ids_and_dates_out_of_range_answer_422_not_500(platform: Platform) -> None:
    client = login(platform, "supervisor")
    huge = "99999999999999999999999"
    for path in (
        f"/warnings/{huge}",
        f"/applications/{huge}",
        f"/secondary/{huge}",
        f"/screening/offers/{huge}",
        f"/rosters/comparisons/{huge}",
        "/applications/0",
        "/settlements?start=0001-01-01&end=0001-01-02",
    ):
        assert client.get(path).status_code == 422, path
    token = page_csrf(client)
    assert client.post(f"/secondary/{huge}/approve", data={"csrf_token": token}).status_code == 422
