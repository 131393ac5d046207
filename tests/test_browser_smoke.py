"""The browser tests' chain, without the console: Debian's Chromium launched through
Playwright (tests/browser.py), a page in Chinese drawn with a font for Chinese, its
screenshot kept where a CI run leaves it, and axe-core, as the gateway serves it, finding
the faults it must find and none on a clean page.

The pages come from a small HTTP server of the test's own, under a Content-Security-
Policy that refuses inline scripts as the console's does, so axe is known to run there.
"""

from __future__ import annotations

import http.server
import shutil
import struct
import subprocess
import threading
from collections.abc import Iterator

import pytest
from playwright.sync_api import Browser, Page

from tests.browser import (
    SCREENSHOTS,
    VIEWPORT,
    format_violations,
    launch_chromium,
    new_page,
    rendering_fonts,
    run_axe,
    screenshot,
    serious_violations,
)

HEADING = "兜底保障"
CLEAN = f"""<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>兜底：浏览器测试</title></head>
<body>
<main>
  <h1>{HEADING}</h1>
  <p>因病致贫、因病返贫的家庭，一站式结算。</p>
  <button type="button">提交</button>
</main>
</body>
</html>
"""
BROKEN = """<!doctype html>
<html lang="zh-CN">
<head><meta charset="utf-8"><title>兜底：有缺陷的页面</title></head>
<body>
<main>
  <h1>缺陷</h1>
  <img src="data:image/gif;base64,R0lGODlhAQABAAAAACw=">
  <button type="button"></button>
</main>
</body>
</html>
"""
PAGES = {"/clean": CLEAN, "/broken": BROKEN}
CONTENT_SECURITY_POLICY = "default-src 'self'; script-src 'self'; img-src 'self' data:"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class _Pages(http.server.BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        page = PAGES.get(self.path)
        if page is None:
            self.send_error(404)
            return
        body = page.encode()
        self.send_response(200)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Security-Policy", CONTENT_SECURITY_POLICY)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def site() -> Iterator[str]:
    """The base URL of the test's pages."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Pages)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    with launch_chromium() as launched:
        yield launched


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    with new_page(browser) as opened:
        yield opened


def chinese_font_families() -> set[str]:
    """The font families fontconfig says cover Chinese (each of their names)."""
    fc_list = shutil.which("fc-list")
    if fc_list is None:
        pytest.fail("no fc-list: fontconfig comes with Debian's chromium")
    listed = subprocess.run(
        [fc_list, ":lang=zh", "family"], capture_output=True, text=True, check=True
    ).stdout
    return {name.strip() for line in listed.splitlines() for name in line.split(",")} - {""}


def test_a_chinese_page_is_drawn_with_a_chinese_font_and_its_screenshot_kept(
    page: Page, site: str
) -> None:
    page.goto(f"{site}/clean")
    assert page.inner_text("h1") == HEADING
    fonts = rendering_fonts(page, "h1")
    assert fonts, "the heading was drawn with no font"
    assert set(fonts) <= chinese_font_families(), (
        f"the heading was drawn with {fonts}, not only with fonts for Chinese "
        "(apt-get install fonts-noto-cjk)"
    )

    path = screenshot(page, "browser-smoke")
    assert path == SCREENSHOTS / "zh-CN" / "browser-smoke.png"
    png = path.read_bytes()
    assert png.startswith(PNG_SIGNATURE)
    width, height = struct.unpack(">II", png[16:24])  # IHDR, the first chunk
    assert width == VIEWPORT["width"]
    assert height >= VIEWPORT["height"]
    # Drawn, not blank: the same page with the text hidden looks otherwise.
    page.evaluate("document.querySelector('main').style.visibility = 'hidden'")
    assert page.screenshot(full_page=True) != png


def test_axe_finds_an_image_without_a_text_and_a_button_without_a_name(
    page: Page, site: str
) -> None:
    page.goto(f"{site}/broken")
    serious = serious_violations(run_axe(page))
    assert {violation["id"] for violation in serious} >= {"image-alt", "button-name"}
    message = format_violations(serious)
    assert "image-alt (critical)" in message
    assert "    img" in message  # the element found, by its selector


def test_axe_finds_nothing_on_a_clean_page(page: Page, site: str) -> None:
    page.goto(f"{site}/clean")
    violations = run_axe(page)
    assert violations == [], format_violations(violations)
    # axe stays loaded: a second run on the same page injects nothing again.
    assert run_axe(page) == []


def test_serious_violations_keep_the_serious_and_critical_ones() -> None:
    violations = [
        {"id": impact, "impact": impact} for impact in ("minor", "moderate", "serious", "critical")
    ]
    assert [violation["id"] for violation in serious_violations(violations)] == [
        "serious",
        "critical",
    ]
    assert format_violations([]) == "no violations"
