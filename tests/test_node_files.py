"""Material downloads from DATA_DIR/files: served as attachments, nothing outside the folder."""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient

from node.app import create_app
from tests.node_support import MovableClock, make_node


@pytest.fixture
async def client(aiohttp_client, tmp_path) -> TestClient:
    config = make_node(tmp_path)
    files = config.data_dir / "files"
    files.mkdir(parents=True)
    (files / "checkliste.txt").write_text("Checkliste E-Akte\n", encoding="utf-8")
    (files / "page.html").write_text("<script>alert(1)</script>", encoding="utf-8")
    (files / ".hidden.txt").write_text("secret", encoding="utf-8")
    (config.data_dir / "outside.txt").write_text("outside", encoding="utf-8")
    return await aiohttp_client(create_app(config, clock=MovableClock(), start_workers=False))


async def test_a_material_file_is_downloaded_as_an_attachment(client: TestClient) -> None:
    response = await client.get("/files/checkliste.txt")
    assert response.status == 200
    assert await response.text() == "Checkliste E-Akte\n"
    assert response.headers["Content-Type"].startswith("text/plain")
    assert response.headers["Content-Disposition"] == 'attachment; filename="checkliste.txt"'
    assert response.headers["X-Content-Type-Options"] == "nosniff"


@pytest.mark.parametrize(
    "path",
    [
        "/files/..%2Foutside.txt",
        "/files/%2E%2E%2Foutside.txt",
        "/files/..%5Coutside.txt",
        "/files/.hidden.txt",
        "/files/page.html",  # not an allowed media type: never served as a page of the node
        "/files/missing.txt",
        "/files/praxisnetz.toml",
    ],
)
async def test_nothing_outside_the_allowed_files_is_served(client: TestClient, path: str) -> None:
    response = await client.get(path)
    assert response.status == 404
    assert "outside" not in await response.text()
