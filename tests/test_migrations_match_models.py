"""The migrations build exactly the schema the models declare: after ``migrate`` to the
head, Alembic's comparison of the database with the models' metadata finds nothing to
change (tables, columns, types, nullability, indexes, unique constraints), on SQLite and
on PostgreSQL. A migration that forgets a column or an index fails here, not in a node."""

from __future__ import annotations

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

import node.hub.tables  # noqa: F401 - the hub's tables belong to the same metadata
from node.storage.db import migrate
from node.storage.models import Base
from tests.node_support import database_engine

# hub_search (PostgreSQL only, migrations 0005 and 0007) is no model: node.hub.search_backends
# describes only what its queries use, and its own tests run the migrations against it.
_NOT_MODELS = {"hub_search"}


def _is_model(obj, name, type_, reflected, compare_to) -> bool:  # noqa: ANN001 - Alembic's hook
    table = obj if type_ == "table" else getattr(obj, "table", None)
    return getattr(table, "name", name) not in _NOT_MODELS


def _differences(sync) -> list:  # noqa: ANN001 - a sync connection
    context = MigrationContext.configure(sync, opts={"include_object": _is_model})
    return compare_metadata(context, Base.metadata)


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request, tmp_path):
    # PostgreSQL when PRAXISNETZ_TEST_POSTGRES_URL is set (skipped otherwise)
    async for engine in database_engine(request.param, tmp_path):
        yield engine


async def test_the_migrated_schema_is_the_models_schema(engine) -> None:
    await migrate(engine)
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert differences == []


async def test_the_comparison_sees_a_missing_index(engine) -> None:
    await migrate(engine)
    async with engine.begin() as connection:
        await connection.exec_driver_sql("DROP INDEX ix_inbox_items_arrival")
    async with engine.connect() as connection:
        differences = await connection.run_sync(_differences)
    assert [(kind, index.name) for kind, index in differences] == [
        ("add_index", "ix_inbox_items_arrival")]
