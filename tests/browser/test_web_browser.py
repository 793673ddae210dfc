"""The web interface in a real browser: Debian's Chromium driven by Playwright.

A node runs in this process on a loopback port. A staff member signs in, previews and
publishes a practice through the form, and finds it on the public pages; the same is
done with JavaScript switched off. axe-core (``npm ci`` in ``tests/browser``) checks
every page type in German and English for serious or critical violations. Screenshots
go to ``$PRAXISNETZ_TEST_ARTIFACTS/browser`` (default: the test's temporary folder).
"""

from __future__ import annotations

import os
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from tests.browser.browser_support import (
    CHROMIUM,  # noqa: I001
    CHROMIUM_MISSING,
    launch_chromium,
    serious_violations,
    sign_in,
)
from tests.web_support import add_staff, web_app

if not CHROMIUM.exists():
    pytest.skip(CHROMIUM_MISSING, allow_module_level=True)

from playwright.async_api import Browser, Page, async_playwright  # noqa: E402


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture
def artifacts(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("PRAXISNETZ_TEST_ARTIFACTS", tmp_path)) / "browser"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


@pytest.fixture
async def base_url(aiohttp_server, tmp_path) -> str:
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    app = web_app(tmp_path, base_url=url)
    await aiohttp_server(app, host="127.0.0.1", port=port)
    await add_staff(app)
    return url


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    async with async_playwright() as playwright:
        chromium = await launch_chromium(playwright)
        try:
            yield chromium
        finally:
            await chromium.close()


async def _fill_practice(page: Page, title: str) -> None:
    await page.get_by_label("Titel", exact=False).first.fill(title)
    await page.get_by_label("Zusammenfassung").fill("Zwölf Monate <img src=x onerror=alert(1)>")
    await page.get_by_label("Text (Markdown)").fill(
        "Wir haben die **Bauakten** umgestellt. <script>alert(2)</script>"
    )
    await page.get_by_label("Stand").select_option("piloting")
    await page.get_by_label("E-Akte und Dokumentenmanagement").check()
    await page.get_by_label("Schritte (einer pro Zeile)").fill("Ist-Prozesse aufnehmen\nPilot")


async def test_staff_publishes_a_practice_and_every_page_passes_axe(
    browser: Browser, base_url: str, artifacts: Path
) -> None:
    context = await browser.new_context(bypass_csp=True, locale="de-DE")
    page = await context.new_page()
    dialogs: list[str] = []  # any alert() would mean user text ran as script
    page.on("dialog", lambda dialog: dialogs.append(dialog.message))
    await page.goto(f"{base_url}/dashboard")
    assert page.url.startswith(f"{base_url}/signin")  # signed out: sent to sign in
    await sign_in(page, base_url)
    await page.goto(f"{base_url}/dashboard/new?kind=practice")
    await page.get_by_role("button", name="Veröffentlichen").click()  # empty: errors
    error = page.locator("#f-title-error")
    assert await error.inner_text() == "Bitte ausfüllen."
    assert "f-title-error" in (await page.get_attribute("#f-title", "aria-describedby"))
    findings = {"form with errors": await serious_violations(page)}
    await page.screenshot(path=str(artifacts / "1-form-errors.png"), full_page=True)
    await page.get_by_label("Titel", exact=False).first.fill("E-Akte im Bauamt")
    await page.get_by_role("button", name="Veröffentlichen").click()  # no topic, no status
    assert await page.locator("#f-topics-error").count() == 1
    assert await page.get_attribute("#f-topics", "aria-invalid") == "true"
    findings["errors at a fieldset and a select"] = await serious_violations(page)
    await _fill_practice(page, "E-Akte im Bauamt")
    await page.get_by_role("button", name="Vorschau").click()
    assert await page.locator(".preview strong").first.inner_text() == "Bauakten"
    await page.screenshot(path=str(artifacts / "2-preview.png"), full_page=True)
    await page.get_by_role("button", name="Veröffentlichen").click()
    await page.wait_for_url(f"{base_url}/dashboard?done=saved")
    findings["dashboard"] = await serious_violations(page)
    await page.get_by_role("link", name="E-Akte im Bauamt", exact=True).click()
    await page.wait_for_url(f"{base_url}/practices/e-akte-im-bauamt")
    assert await page.locator("h1").inner_text() == "E-Akte im Bauamt"
    assert await page.locator("ol.steps li").all_inner_texts() == [
        "Ist-Prozesse aufnehmen",
        "Pilot",
    ]
    await page.screenshot(path=str(artifacts / "3-practice.png"), full_page=True)
    for path in ("/", "/practices/e-akte-im-bauamt", "/dashboard/following",
                 "/dashboard/timeline", "/dashboard/upload", "/dashboard/new"):  # fmt: skip
        for language in ("de", "en"):
            await page.goto(f"{base_url}{path}?lang={language}")
            assert await page.get_attribute("html", "lang") == language
            findings[f"{path} ({language})"] = await serious_violations(page)
    await page.goto(f"{base_url}/?lang=de")
    await page.screenshot(path=str(artifacts / "4-home.png"), full_page=True)
    # The checker itself finds a planted violation (an image without alternative text).
    await page.evaluate("document.querySelector('main').append(document.createElement('img'))")
    assert any(found.startswith("image-alt") for found in await serious_violations(page))
    await context.close()
    assert dialogs == []
    assert {name: found for name, found in findings.items() if found} == {}


async def test_everything_works_without_javascript(
    browser: Browser, base_url: str, artifacts: Path
) -> None:
    context = await browser.new_context(java_script_enabled=False, locale="en-GB")
    page = await context.new_page()
    await page.goto(f"{base_url}/signin?lang=de")
    await page.keyboard.press("Tab")
    assert await page.evaluate("document.activeElement.className") == "skip-link"
    await sign_in(page, base_url)
    await page.goto(f"{base_url}/dashboard/new?kind=practice")
    await _fill_practice(page, "Ohne Skript")
    await page.get_by_role("button", name="Vorschau").click()
    assert await page.locator(".preview #c-title").inner_text() == "Ohne Skript"
    await page.get_by_role("button", name="Veröffentlichen").click()
    await page.wait_for_url(f"{base_url}/dashboard?done=saved")
    await page.get_by_role("link", name="Ohne Skript", exact=True).click()
    assert await page.locator("h1").inner_text() == "Ohne Skript"
    assert "<img src=x" in await page.locator(".summary").inner_text()  # shown as text
    await page.screenshot(path=str(artifacts / "5-no-javascript.png"), full_page=True)
    await page.goto(f"{base_url}/dashboard")
    await page.get_by_role("button", name="Abmelden").click()
    await page.wait_for_url(f"{base_url}/")
    await page.goto(f"{base_url}/dashboard")
    assert page.url.startswith(f"{base_url}/signin")
    await context.close()
