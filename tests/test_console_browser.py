"""The console in a real browser (Debian's Chromium through Playwright), on the whole platform
with the demo data: every page in Chinese and in English drawn, photographed
(test-output/screenshots/<lang>/) and checked by axe-core (no serious or critical
violation), every action reachable by keyboard, and the day's work clicked through: a case
worker accepts an application and sees its deadline, a clerk decides a warning and the
status shows on the person's page, a supervisor approves a secondary run and downloads its
bank file, a clerk of another region is refused.

The browser's side does not depend on the database: these run on SQLite; the HTTP tests
(tests/test_console.py) run on both.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from typing import Final

import pytest
from openpyxl import load_workbook
from playwright.sync_api import Browser, Page, expect

from doudi.assistance.v1 import assistance_pb2
from doudi.assistance.v1.assistance_pb2_grpc import AssistanceServiceStub
from doudi.cli import demo
from doudi.common.protos import from_date
from doudi.datashare.v1 import datashare_pb2
from doudi.datashare.v1.datashare_pb2_grpc import DatashareServiceStub
from tests.browser import (
    format_violations,
    launch_chromium,
    new_page,
    run_axe,
    screenshot,
    serious_violations,
)
from tests.console_support import (
    ACCOUNTS,
    TODAY,
    XIXIA,
    YEAR,
    console_platforms,
    person_path,
    warning_of,
)
from tests.platform import Platform
from tests.services import INTERNAL

LANGUAGES: Final = {"zh-CN": "zh_CN", "en": "en"}

# One worker runs them all, on one platform and one browser (make test: --dist loadgroup).
pytestmark = pytest.mark.xdist_group("console-browser")


@pytest.fixture(scope="module")
def platform(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Platform]:
    with console_platforms(tmp_path_factory, "console-browser") as on:
        yield on("sqlite")


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


def log_in(page: Page, platform: Platform, username: str, lang: str = "zh-CN") -> None:
    page.context.add_cookies(
        [{"name": "doudi_lang", "value": LANGUAGES[lang], "url": f"{platform.base_url}/console/"}]
    )
    page.goto(f"{platform.base_url}/console/login")
    page.fill("#username", username)
    page.fill("#password", ACCOUNTS[username].password)
    page.press("#password", "Enter")
    page.wait_for_url(lambda url: "/login" not in url)


def check(page: Page, name: str, lang: str) -> None:
    """The page as it stands: photographed, and no serious accessibility violation."""
    screenshot(page, name, lang=lang)
    found = serious_violations(run_axe(page))
    assert not found, f"{name} ({lang}):\n{format_violations(found)}"


def prepared(platform: Platform) -> dict[str, int]:
    """What the pages show besides the demo's: a secondary run, a comparison."""
    assistance = AssistanceServiceStub(platform.services["assistance"].channel())
    hub = DatashareServiceStub(platform.services["datashare"].channel())
    run = assistance.CreateSecondaryRun(
        assistance_pb2.CreateSecondaryRunRequest(
            request_id="browser-pages",
            region=XIXIA,
            year=YEAR,
            through=from_date(TODAY),
            case_worker="caseworker",
        ),
        metadata=INTERNAL,
    ).run
    comparison = hub.CompareRosters(
        datashare_pb2.CompareRostersRequest(region=XIXIA, year=YEAR), metadata=INTERNAL
    ).comparison
    application = assistance.ListApplications(
        assistance_pb2.ListApplicationsRequest(region=XIXIA), metadata=INTERNAL
    ).applications[0]
    return {
        "run": run.run_id,
        "comparison": comparison.comparison_id,
        "application": application.application_id,
        "warning": warning_of(platform, demo.WARNED.household_id),
    }


def page_paths(ids: dict[str, int]) -> dict[str, str]:
    """Every page of the console (under /console), by the name of its screenshot."""
    return {
        "dashboard": f"/dashboard?region={XIXIA}&year={YEAR}",
        "warnings": "/warnings",
        "warning": f"/warnings/{ids['warning']}",
        "persons": "/persons",
        "person-reason": person_path(demo.WARNED.person_id),
        "person": person_path(demo.WARNED.person_id) + f"?reason=warning:{ids['warning']}",
        "applications": "/applications",
        "application-new": "/applications/new",
        "application": f"/applications/{ids['application']}",
        "secondary": "/secondary",
        "secondary-run": f"/secondary/{ids['run']}",
        "screening": "/screening",
        "rosters": "/rosters",
        "comparison": f"/rosters/comparisons/{ids['comparison']}",
        "settlements": f"/settlements?start={YEAR}-01-01&end={TODAY.isoformat()}",
        "packs": "/packs",
        "pack": "/packs/xixia-2017",
        "not-found": "/no-such-page",
    }


@pytest.mark.parametrize("lang", sorted(LANGUAGES))
def test_every_page_is_drawn_photographed_and_accessible_in_both_languages(
    browser: Browser, platform: Platform, lang: str
) -> None:
    ids = prepared(platform)
    base = f"{platform.base_url}/console"
    with new_page(browser, lang=lang) as page:
        page.context.add_cookies(
            [{"name": "doudi_lang", "value": LANGUAGES[lang], "url": f"{base}/"}]
        )
        page.goto(f"{base}/login")
        check(page, "login", lang)
        log_in(page, platform, "supervisor", lang)
        pages = page_paths(ids)
        for name, path in pages.items():
            answer = page.goto(base + path)
            assert answer is not None
            assert answer.status == (404 if name == "not-found" else 200), (name, answer.status)
            if page.locator("[data-chart]").count():
                expect(page.locator("[data-chart]").first).to_have_attribute("data-drawn", "true")
            assert page.evaluate("document.documentElement.lang") == lang
            check(page, name, lang)
        # the language is the page's: Chinese text on Chinese pages, none on English ones
        page.goto(base + "/warnings")
        heading = page.locator("h1").inner_text()
        assert heading == ("预警" if lang == "zh-CN" else "Warnings")


def test_every_action_of_a_page_is_reached_by_the_keyboard(
    browser: Browser, platform: Platform
) -> None:
    base = f"{platform.base_url}/console"
    ids = prepared(platform)
    with new_page(browser) as page:
        log_in(page, platform, "supervisor")
        for path in page_paths(ids).values():
            page.goto(base + path)
            wanted = page.evaluate(
                """() => Array.from(document.querySelectorAll(
                    'a[href], button, input:not([type=hidden]), select, textarea, [tabindex="0"]'))
                  .filter(e => !e.disabled && e.getClientRects().length > 0)
                  .map((e, i) => {
                    // a group of radio buttons is one stop: the arrow keys move within it
                    const mark = e.type === "radio" ? `radio:${e.name}` : String(i);
                    e.dataset.kb = mark;
                    return mark;
                  })"""
            )
            reached: set[str] = set()
            page.locator("body").focus()
            for _ in range(len(wanted) * 2 + 5):
                page.keyboard.press("Tab")
                marker = page.evaluate(
                    "document.activeElement && document.activeElement.dataset.kb"
                )
                if marker is not None:
                    reached.add(marker)
            missing = set(wanted) - reached
            assert len(wanted) >= 3, path  # at least the skip link, the menu, log out
            assert not missing, (
                path,
                page.evaluate(
                    "(ids) => ids.map(i => document.querySelector(`[data-kb='${i}']`).outerHTML.slice(0, 120))",
                    sorted(missing),
                ),
            )


def test_a_case_worker_accepts_an_application_and_sees_its_deadline(
    browser: Browser, platform: Platform
) -> None:
    base = f"{platform.base_url}/console"
    with new_page(browser) as page:
        log_in(page, platform, "caseworker")
        page.goto(base + "/applications")
        page.get_by_role("link", name="窗口受理救助申请").click()
        page.fill("#person_id", demo.NEIGHBOUR.person_id)
        page.fill("#household_id", demo.NEIGHBOUR.household_id)
        page.select_option("#kind", "temporary")
        page.fill("#received", "救助申请书\n身份证复印件")
        page.fill("#missing_name_0", "医疗费用发票")
        page.fill("#missing_due_0", TODAY.replace(day=min(TODAY.day, 28)).isoformat())
        page.keyboard.press("Tab")
        page.get_by_role("button", name="受理").press("Enter")
        page.wait_for_url("**/applications/*")
        expect(page.locator("h1")).to_contain_text("临时救助")
        deadline = page.locator("#deadline").inner_text()
        assert deadline[:4].isdigit()
        assert deadline >= TODAY.isoformat()
        days_left = page.locator("#days-left").inner_text()
        assert days_left.isdigit()
        assert 1 <= int(days_left) <= 30
        screenshot(page, "application-accepted", lang="zh-CN")


def test_a_clerk_decides_a_warning_and_the_status_shows_on_the_persons_page(
    browser: Browser, platform: Platform
) -> None:
    warning_id = warning_of(platform, demo.WARNED.household_id)
    base = f"{platform.base_url}/console"
    with new_page(browser) as page:
        log_in(page, platform, "civil")
        page.goto(base + "/warnings")
        page.locator(f"a[href='/console/warnings/{warning_id}']").click()
        expect(page.locator("h1")).to_contain_text(f"#{warning_id}")
        page.get_by_role("button", name="签收：正在核查").click()
        expect(page.locator("dl.facts")).to_contain_text("已签收")
        page.select_option("#status", "low_income")
        page.get_by_role("button", name="认定", exact=True).click()
        expect(page.locator("dl.facts")).to_contain_text("已认定")
        page.get_by_role("link", name="查看个人页面").first.click()
        expect(page.locator("#statuses-title")).to_be_visible()
        statuses = page.locator("section[aria-labelledby='statuses-title']")
        expect(statuses).to_contain_text("低收入")
        expect(statuses).to_contain_text("民政部门")
        screenshot(page, "person-after-certifying", lang="zh-CN")


def test_a_supervisor_approves_a_secondary_run_and_downloads_its_bank_file(
    browser: Browser, platform: Platform
) -> None:
    base = f"{platform.base_url}/console"
    with new_page(browser, accept_downloads=True) as page:
        log_in(page, platform, "supervisor")
        page.goto(base + "/secondary")
        page.select_option("#new-region", XIXIA)
        page.fill("#through", TODAY.isoformat())
        page.get_by_role("button", name="生成（批准前不支付）").click()
        page.wait_for_url("**/secondary/*")
        to_pay = page.locator("dl.facts").inner_text()
        assert "未批准" in to_pay or "not yet" in to_pay
        page.locator("form[action$='/approve'] button").click()
        expect(page.locator("#approval")).to_contain_text("supervisor")
        with page.expect_download() as waiting:
            page.get_by_role("link", name="Excel (xlsx)").click()
        content = waiting.value.path().read_bytes()
        sheet = load_workbook(io.BytesIO(content), read_only=True).active
        assert sheet is not None
        rows = [tuple(row) for row in sheet.iter_rows(values_only=True)]
        assert rows[0] == ("身份证号", "姓名", "年度", "金额(元)", "批次")
        assert any(row[0] == demo.RECIPIENT.person_id for row in rows[1:])
        screenshot(page, "secondary-approved", lang="zh-CN")


def test_a_clerk_of_another_region_is_refused_in_the_browser(
    browser: Browser, platform: Platform
) -> None:
    warning_id = warning_of(platform, demo.WARNED.household_id)
    base = f"{platform.base_url}/console"
    with new_page(browser) as page:
        log_in(page, platform, "linzhi")
        answer = page.goto(f"{base}/warnings/{warning_id}")
        assert answer is not None
        assert answer.status == 403
        expect(page.locator("h1")).to_contain_text("无权操作")
        answer = page.goto(f"{base}{person_path(demo.WARNED.person_id)}?reason=look")
        assert answer is not None
        assert answer.status == 403
        answer = page.goto(f"{base}/dashboard")
        assert answer is not None
        assert answer.status == 403
