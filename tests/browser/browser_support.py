"""What every browser test shares: Debian's chromium, signing in, waiting for a page, axe-core.

Test modules skip themselves (module level) when ``CHROMIUM`` is missing, then import
the helpers from here.
"""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Browser, Page, Playwright

from tests.engine_support import eventually
from tests.web_support import PASSWORD, USERNAME

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_MISSING = f"{CHROMIUM} is missing: apt-get install chromium to run the browser tests"
# Never a downloaded browser; no background traffic (the machine's network is closed).
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--no-first-run", "--disable-sync",
]  # fmt: skip
AXE = Path(__file__).parent / "node_modules" / "axe-core" / "axe.min.js"
SERIOUS = ("serious", "critical")


async def launch_chromium(playwright: Playwright) -> Browser:
    return await playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )


async def sign_in(page: Page, base_url: str) -> None:
    await page.goto(f"{base_url}/signin")
    await page.get_by_label("Benutzername").fill(USERNAME)
    await page.get_by_label("Passwort").fill(PASSWORD)
    await page.get_by_role("button", name="Anmelden").click()
    await page.wait_for_url(f"{base_url}/dashboard")


async def until_page_shows(page: Page, url: str, text: str) -> None:
    async def shown() -> bool:
        await page.goto(url)
        return text in await page.content()

    await eventually(shown, timeout=20, interval=0.3)


async def serious_violations(page: Page) -> list[str]:
    """axe-core's serious and critical findings for the page as it is now."""
    assert AXE.exists(), f"{AXE} is missing: run 'npm ci' in tests/browser"
    await page.add_script_tag(path=str(AXE))
    result = await page.evaluate(
        "async () => await axe.run(document, {runOnly: ['wcag2a', 'wcag2aa', 'wcag21a', "
        "'wcag21aa', 'best-practice']})"
    )
    return [
        f"{v['id']} ({v['impact']}): {[n['target'] for n in v['nodes']][:3]}"
        for v in result["violations"]
        if v["impact"] in SERIOUS
    ]
