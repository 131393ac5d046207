"""Browser tests' helpers: Debian's Chromium driven by Playwright, screenshots, axe-core.

    @pytest.fixture(scope="module")
    def browser() -> Iterator[Browser]:
        with launch_chromium() as launched:
            yield launched

    def test_a_page(browser: Browser) -> None:
        with new_page(browser) as page:
            page.goto(url)
            screenshot(page, "dashboard")
            violations = serious_violations(run_axe(page))
            assert not violations, format_violations(violations)

The browser is the system's, never one Playwright downloads (no ``playwright
install``): ``DOUDI_TEST_CHROMIUM``, or else the first of :data:`CHROMIUM_CANDIDATES`
that exists. ``bash .ci/run`` installs Debian's ``chromium`` and ``fonts-noto-cjk``
and sets ``DOUDI_TEST_CHROMIUM``; elsewhere ``apt-get install chromium
fonts-noto-cjk``. Without a browser a browser test is skipped with the reason, or
fails where ``CI`` is set.

Screenshots are written to ``test-output/screenshots/<lang>/<name>.png`` at the
repository root (ignored by git; each run overwrites its own), where they are found
after a run, CI's too. Accessibility is checked with the axe-core the gateway serves
(:mod:`gateway.console.vendor`, installed by ``make install``).
"""

from __future__ import annotations

import contextlib
import functools
import os
import re
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import Any, Final, NoReturn

import pytest
from playwright.sync_api import Browser, Page, sync_playwright

from gateway.console import vendor
from tests.services import ROOT

CHROMIUM_ENV: Final = "DOUDI_TEST_CHROMIUM"
CHROMIUM_CANDIDATES: Final = ("/usr/bin/chromium", "/usr/bin/chromium-headless-shell")
SCREENSHOTS: Final = ROOT / "test-output" / "screenshots"
SERIOUS_IMPACTS: Final = frozenset({"serious", "critical"})
VIEWPORT: Final = {"width": 1280, "height": 800}
"""A case worker's screen (a laptop's), for pages and screenshots alike."""

_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def chromium_path() -> str | None:
    """The browser to launch: ``DOUDI_TEST_CHROMIUM`` if set (whether or not it exists,
    so a wrong path fails loudly), else the first candidate installed, else None."""
    configured = os.environ.get(CHROMIUM_ENV)
    if configured:
        return configured
    return next((path for path in CHROMIUM_CANDIDATES if os.access(path, os.X_OK)), None)


def _no_browser(reason: str) -> NoReturn:
    """Skip, or fail in CI, where a browser test cannot run."""
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI is set, so this fails rather than skips)")
    pytest.skip(reason)


@contextlib.contextmanager
def launch_chromium() -> Iterator[Browser]:
    """Headless Chromium, closed afterwards. As root (a container), without Chromium's
    sandbox, which cannot start as root; and never with the small /dev/shm of a container
    as its shared memory."""
    path = chromium_path()
    if path is None:
        _no_browser(
            f"no Chromium: set {CHROMIUM_ENV} or install Debian's chromium "
            f"(apt-get install chromium fonts-noto-cjk); looked for {', '.join(CHROMIUM_CANDIDATES)}"
        )
    if not os.access(path, os.X_OK):
        pytest.fail(f"{CHROMIUM_ENV}={path} is not an executable file")
    args = ["--disable-dev-shm-usage"]
    if os.geteuid() == 0:
        args.append("--no-sandbox")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=path, headless=True, args=args)
        try:
            yield browser
        finally:
            browser.close()


@contextlib.contextmanager
def new_page(browser: Browser, *, lang: str = "zh-CN", **options: Any) -> Iterator[Page]:
    """A page in a context of its own (cookies, storage), whose browser speaks ``lang``,
    in the bureau's time zone; ``options`` go to ``Browser.new_context``."""
    context = browser.new_context(
        **{
            "locale": lang,
            "timezone_id": "Asia/Shanghai",
            "viewport": VIEWPORT,
            **options,
        }
    )
    try:
        yield context.new_page()
    finally:
        context.close()


def screenshot(page: Page, name: str, *, lang: str | None = None, full_page: bool = True) -> Path:
    """Write ``page`` as ``test-output/screenshots/<lang>/<name>.png`` and return its path;
    ``lang`` by default is the page's own (``<html lang>``, ``none`` without one)."""
    if not _NAME.fullmatch(name):
        raise ValueError(f"a screenshot's name is a plain file name, not {name!r}")
    if lang is None:
        lang = page.evaluate("document.documentElement.lang") or "none"
    if not _NAME.fullmatch(lang):
        raise ValueError(f"a screenshot's language is a plain folder name, not {lang!r}")
    path = SCREENSHOTS / lang / f"{name}.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    page.screenshot(path=path, full_page=full_page)
    return path


@functools.cache
def _axe_source() -> str:
    return vendor.vendor_file("axe.min.js").read_text(encoding="utf-8")


def run_axe(page: Page, options: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """axe-core's violations on ``page`` as it is now (each with its ``id``, ``impact``,
    ``help``, ``helpUrl`` and ``nodes``), with axe's ``options`` (by default its rules
    for WCAG and best practice).

    axe-core is evaluated into the page rather than added as an inline ``<script>``
    (``Page.add_script_tag``): the console's Content-Security-Policy (``script-src
    'self'``) refuses inline scripts, and a test must not weaken the policy it runs
    under.
    """
    if not page.evaluate("typeof window.axe === 'object'"):
        page.evaluate(_axe_source())
    results: dict[str, Any] = page.evaluate(
        "async (options) => await axe.run(document, options)",
        {"resultTypes": ["violations"], **(options or {})},
    )
    violations: list[dict[str, Any]] = results["violations"]
    return violations


def serious_violations(violations: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
    """The violations whose impact is serious or critical."""
    return [violation for violation in violations if violation.get("impact") in SERIOUS_IMPACTS]


def format_violations(violations: Iterable[dict[str, Any]]) -> str:
    """The violations for an assertion's message: each rule, its impact and help, and the
    elements it found (their CSS selectors)."""
    lines = []
    for violation in violations:
        lines.append(
            f"{violation['id']} ({violation.get('impact')}): {violation['help']} "
            f"<{violation['helpUrl']}>"
        )
        lines += [f"    {' '.join(map(str, node['target']))}" for node in violation["nodes"]]
    return "\n".join(lines) or "no violations"


def rendering_fonts(page: Page, selector: str) -> dict[str, int]:
    """The fonts the browser drew the text of ``selector``'s first element with: each
    family and how many glyphs it drew (Chromium's own account, through the DevTools
    protocol)."""
    session = page.context.new_cdp_session(page)
    try:
        session.send("DOM.enable")
        session.send("CSS.enable")
        root = session.send("DOM.getDocument")["root"]["nodeId"]
        node = session.send("DOM.querySelector", {"nodeId": root, "selector": selector})
        if not node["nodeId"]:
            raise LookupError(f"no element matches {selector!r}")
        fonts = session.send("CSS.getPlatformFontsForNode", {"nodeId": node["nodeId"]})
    finally:
        session.detach()
    counts: dict[str, int] = {}
    for font in fonts["fonts"]:
        counts[font["familyName"]] = counts.get(font["familyName"], 0) + font["glyphCount"]
    return counts
