"""Issue 6's whole story in Debian's Chromium, through real federation on loopback.

Gütersloh and Düren join a hub that accepts loopback members; Düren follows Gütersloh.
Gütersloh's staff publish a practice through the form; it reaches Düren's timeline;
Düren disagrees with a reason; the hub editor places the practice in a section and
freezes edition 1 through the confirmation page; the edition's page shows the practice
with the disagreement. A screenshot of each step goes to the artifacts folder.
"""

from __future__ import annotations

import os
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from node.hub.tables import HubMember
from node.storage.models import Following, RemoteObject
from tests.browser.browser_support import (
    CHROMIUM,
    CHROMIUM_MISSING,
    launch_chromium,
    sign_in,
    until_page_shows,
)
from tests.engine_support import RunningNode, eventually, node_config, start_node
from tests.hub_node_support import start_hub
from tests.web_support import add_staff

REASON = "Ohne Scanstraße geht es bei uns nicht."

if not CHROMIUM.exists():
    pytest.skip(CHROMIUM_MISSING, allow_module_level=True)

from playwright.async_api import Page, async_playwright  # noqa: E402

pytestmark = pytest.mark.timeout(90)


@pytest.fixture
async def network(tmp_path: Path) -> AsyncIterator[tuple[RunningNode, RunningNode, RunningNode]]:
    hub = await start_hub(tmp_path)
    guetersloh = await start_node(node_config(tmp_path, "guetersloh", ags="05754008"))
    dueren = await start_node(node_config(tmp_path, "dueren", ags="05358008"))
    try:
        for node in (hub, guetersloh, dueren):
            await add_staff(node.app)
        yield hub, guetersloh, dueren
    finally:
        for node in (dueren, guetersloh, hub):
            await node.stop()


async def _follow(page: Page, node: RunningNode, handle: str) -> None:
    await page.goto(f"{node.url}/dashboard/following")
    await page.get_by_label("Kommune, Hub oder Thema: Adresse oder URL").fill(handle)
    await page.get_by_role("button", name="Folgen", exact=True).click()
    await page.wait_for_url(f"{node.url}/dashboard/following?done=sent")


async def _accepted(node: RunningNode, target: str) -> bool:
    return bool(await node.rows(Following, Following.target_uri == target,
                                Following.state == "accepted"))


async def _join_hub(page: Page, hub: RunningNode, member: RunningNode) -> None:
    """The member follows the hub; the hub approves loopback members and follows back."""
    await _follow(page, member, f"acct:{hub.config.slug}@{hub.config.domain}")
    await eventually(lambda: hub.rows(HubMember, HubMember.actor_uri == member.actor,
                                      HubMember.state == "approved"), timeout=20)
    await eventually(lambda: _accepted(member, hub.actor), timeout=20)
    await eventually(lambda: _accepted(hub, member.actor), timeout=20)


async def _publish_practice(page: Page, node: RunningNode) -> str:
    await page.goto(f"{node.url}/dashboard/new?kind=practice")
    await page.get_by_label("Titel", exact=False).first.fill("Digitale Bauakte")
    await page.get_by_label("Zusammenfassung").fill("Alle Bauakten elektronisch.")
    await page.get_by_label("Text (Markdown)").fill("Seit 2025 **papierlos**.")
    await page.get_by_label("Stand").select_option("in-operation")
    await page.get_by_label("E-Akte und Dokumentenmanagement").check()
    await page.get_by_role("button", name="Veröffentlichen").click()
    await page.wait_for_url(f"{node.url}/dashboard?done=saved")
    return f"{node.url}/practices/digitale-bauakte"


async def _disagree(page: Page, node: RunningNode) -> None:
    await page.get_by_role(
        "link", name=re.compile(r"^Stellung nehmen\s*: Digitale Bauakte$")
    ).click()
    await page.get_by_label("Widerspruch").check()
    await page.get_by_label("Begründung").fill(REASON)
    await page.get_by_label("Titel", exact=False).first.fill("Bei uns anders")
    await page.get_by_role("button", name="Veröffentlichen").click()
    await page.wait_for_url(f"{node.url}/dashboard?done=saved")


async def _place_and_freeze(page: Page, hub: RunningNode, practice: str, shots: Path) -> None:
    await until_page_shows(page, f"{hub.url}/hub/editor", "Digitale Bauakte")
    await page.screenshot(path=str(shots / "5-hub-triage.png"), full_page=True)
    await page.get_by_role("link", name="„Digitale Bauakte“ einordnen").click()
    assert await page.get_by_label("Adresse (URL) des Beitrags").input_value() == practice
    await page.get_by_label("Einführung der E-Akte").check()
    await page.get_by_label("Notiz der Redaktion").fill("Gutes Beispiel, mit Widerspruch")
    await page.get_by_role("button", name="Entscheidung speichern").click()
    await page.wait_for_url(f"{hub.url}/hub/editor?done=placed")
    await page.goto(f"{hub.url}/hub/editor/freeze")
    assert "Ausgabe 1" in await page.locator("h1").inner_text()
    await page.screenshot(path=str(shots / "6-hub-confirm-freeze.png"), full_page=True)
    await page.get_by_role("button", name="Ausgabe 1 endgültig einfrieren").click()
    await page.wait_for_url(f"{hub.url}/handbook/editions?done=frozen")


async def test_practice_to_edition_with_disagreement(
    network: tuple[RunningNode, RunningNode, RunningNode], tmp_path: Path
) -> None:
    hub, guetersloh, dueren = network
    shots = Path(os.environ.get("PRAXISNETZ_TEST_ARTIFACTS", tmp_path)) / "browser-story"
    shots.mkdir(parents=True, exist_ok=True)
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        staff_g, staff_d, editor = [
            await (await browser.new_context(locale="de-DE")).new_page() for _ in range(3)
        ]
        for page, node in ((staff_g, guetersloh), (staff_d, dueren), (editor, hub)):
            await sign_in(page, node.url)

        for page, node in ((staff_g, guetersloh), (staff_d, dueren)):
            await _join_hub(page, hub, node)
        await _follow(staff_d, dueren, f"acct:guetersloh@{guetersloh.config.domain}")
        await eventually(lambda: _accepted(dueren, guetersloh.actor), timeout=20)
        await staff_d.screenshot(path=str(shots / "1-dueren-follows.png"), full_page=True)

        practice = await _publish_practice(staff_g, guetersloh)
        await staff_g.screenshot(path=str(shots / "2-guetersloh-published.png"), full_page=True)

        await until_page_shows(staff_d, f"{dueren.url}/dashboard/timeline", "Digitale Bauakte")
        await staff_d.screenshot(path=str(shots / "3-dueren-timeline.png"), full_page=True)
        await _disagree(staff_d, dueren)
        await staff_d.screenshot(path=str(shots / "4-dueren-disagreed.png"), full_page=True)
        # The hub follows Düren as a member, so the stance reaches it too.
        await eventually(lambda: hub.rows(RemoteObject, RemoteObject.about == practice),
                         timeout=20)

        await _place_and_freeze(editor, hub, practice, shots)
        await editor.get_by_role("link", name="Ausgabe 1", exact=True).click()
        await editor.get_by_role("link", name=re.compile("Einführung der E-Akte")).first.click()
        assert editor.url.startswith(f"{hub.url}/handbook/editions/1/")
        content = await editor.content()
        await editor.screenshot(path=str(shots / "7-edition-page.png"), full_page=True)
        await browser.close()
    assert "Digitale Bauakte" in content
    assert guetersloh.config.name in content
    assert "Widerspruch: 1" in content
    assert REASON in content  # the reason beside the practice, not only the count
