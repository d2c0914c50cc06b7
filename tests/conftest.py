from __future__ import annotations

import os

import pytest

from db import create_pool
from tests.support.anvil import Anvil
from tests.support.pg import PgCluster


def pytest_collection_modifyitems(config, items):
    if os.environ.get("CHAINSETTLE_SLOW") == "1":
        return
    skip = pytest.mark.skip(reason="slow: set CHAINSETTLE_SLOW=1 (make test-slow)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
async def pg_cluster():
    cluster = PgCluster()
    await cluster.setup_template()
    yield cluster
    await cluster.teardown()


@pytest.fixture
async def db_url(pg_cluster):
    """A fresh, migrated database for one test."""
    url = await pg_cluster.new_database()
    yield url
    await pg_cluster.drop_database(url)


@pytest.fixture
async def pool(db_url):
    p = await create_pool(db_url, min_size=1, max_size=8)
    yield p
    await p.close()


@pytest.fixture(scope="module")
def anvil():
    with Anvil() as node:
        yield node
