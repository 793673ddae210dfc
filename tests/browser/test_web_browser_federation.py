"""Two municipalities federate through their web interfaces, in a real browser.

Both nodes run in this process on loopback ports with their workers. Düren's staff
follow Gütersloh by handle; Gütersloh's staff publish a practice through the form; it
reaches Düren's timeline; Düren disagrees with a reason; the disagreement appears on
Gütersloh's public practice page. Screenshots of each step go to the artifacts folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.storage.models import Following, RemoteObject
from tests.browser.browser_support import (
    CHROMIUM,  # noqa: I001
    CHROMIUM_MISSING,
    launch_chromium,
    sign_in,
    until_page_shows,
)
from tests.engine_support import RunningNode, eventually, node_config, start_node
from tests.web_support import add_staff

if not CHROMIUM.exists():
    pytest.skip(CHROMIUM_MISSING, allow_module_level=True)

from playwright.async_api import async_playwright  # noqa: E402


@pytest.fixture
async def nodes(tmp_path: Path) -> AsyncIterator[tuple[RunningNode, RunningNode]]:
    guetersloh = await start_node(node_config(tmp_path, "guetersloh", ags="05754008"))
    dueren = await start_node(node_config(tmp_path, "dueren", ags="05358008"))
    try:
        for node in (guetersloh, dueren):
            await add_staff(node.app)
        yield guetersloh, dueren
    finally:
        await dueren.stop()
        await guetersloh.stop()


async def test_a_practice_travels_and_the_disagreement_comes_back(
    nodes: tuple[RunningNode, RunningNode], tmp_path: Path
) -> None:
    guetersloh, dueren = nodes
    shots = Path(os.environ.get("PRAXISNETZ_TEST_ARTIFACTS", tmp_path)) / "browser-federation"
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        staff_g = await (await browser.new_context(locale="de-DE")).new_page()
        staff_d = await (await browser.new_context(locale="de-DE")).new_page()
        await sign_in(staff_g, guetersloh.url)
        await sign_in(staff_d, dueren.url)

        await staff_d.goto(f"{dueren.url}/dashboard/following")
        handle = f"acct:guetersloh@{guetersloh.config.domain}"
        await staff_d.get_by_label("Kommune, Hub oder Thema: Adresse oder URL").fill(handle)
        await staff_d.get_by_role("button", name="Folgen", exact=True).click()
        await staff_d.wait_for_url(f"{dueren.url}/dashboard/following?done=sent")
        await eventually(lambda: dueren.rows(Following, Following.state == "accepted"), timeout=20)
        await staff_d.screenshot(path=str(shots / "1-dueren-follows.png"), full_page=True)

        await staff_g.goto(f"{guetersloh.url}/dashboard/new?kind=practice")
        await staff_g.get_by_label("Titel", exact=False).first.fill("Digitale Bauakte")
        await staff_g.get_by_label("Zusammenfassung").fill("Alle Bauakten elektronisch.")
        await staff_g.get_by_label("Text (Markdown)").fill("Seit 2025 **papierlos**.")
        await staff_g.get_by_label("Stand").select_option("in-operation")
        await staff_g.get_by_label("E-Akte und Dokumentenmanagement").check()
        await staff_g.get_by_role("button", name="Veröffentlichen").click()
        await staff_g.wait_for_url(f"{guetersloh.url}/dashboard?done=saved")
        await staff_g.screenshot(path=str(shots / "2-guetersloh-published.png"), full_page=True)
        practice = f"{guetersloh.url}/practices/digitale-bauakte"

        await until_page_shows(staff_d, f"{dueren.url}/dashboard/timeline", "Digitale Bauakte")
        await staff_d.screenshot(path=str(shots / "3-dueren-timeline.png"), full_page=True)
        await staff_d.get_by_role(
            "link", name=re.compile(r"^Stellung nehmen\s*: Digitale Bauakte$")
        ).click()
        await staff_d.get_by_label("Widerspruch").check()
        await staff_d.get_by_label("Begründung").fill("Ohne Scanstraße geht es bei uns nicht.")
        await staff_d.get_by_label("Titel", exact=False).first.fill("Bei uns anders")
        await staff_d.get_by_role("button", name="Veröffentlichen").click()
        await staff_d.wait_for_url(f"{dueren.url}/dashboard?done=saved")

        await eventually(
            lambda: guetersloh.rows(RemoteObject, RemoteObject.about == practice), timeout=20
        )
        await staff_g.goto(practice)
        content = await staff_g.content()
        assert "Widerspruch (1)" in content
        assert "Ohne Scanstraße geht es bei uns nicht." in content
        assert "Testkommune dueren" in content  # the author is named
        await staff_g.screenshot(
            path=str(shots / "4-guetersloh-sees-disagreement.png"), full_page=True
        )
        await browser.close()
