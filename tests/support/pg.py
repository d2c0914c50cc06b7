"""Real Postgres for tests: DATABASE_URL when set, else an embedded server.

The schema is migrated once into a template database per session; each test
gets `CREATE DATABASE ... TEMPLATE`, which takes milliseconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import os
import shutil
import tempfile
import time
import uuid
from urllib.parse import urlsplit, urlunsplit

import asyncpg

from db import connect, migrate

_counter = itertools.count()


def with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit((parts.scheme, parts.netloc, f"/{name}", parts.query, parts.fragment))


class PgCluster:
    def __init__(self) -> None:
        self.server = None
        self.tmpdir: str | None = None
        url = os.environ.get("DATABASE_URL")
        if url:
            self.admin_url = url
        else:
            import warnings

            warnings.filterwarnings("ignore", module="platformdirs")
            os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
            import pgserver

            self.tmpdir = tempfile.mkdtemp(prefix="cspg-", dir="/tmp")
            self.server = pgserver.get_server(self.tmpdir, cleanup_mode="stop")
            self.admin_url = f"postgresql://postgres@/postgres?host={self.tmpdir}"
        self.template = f"cs_tpl_{uuid.uuid4().hex[:8]}"

    async def setup_template(self) -> None:
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'CREATE DATABASE "{self.template}"')
        finally:
            await admin.close()
        conn = await connect(with_database(self.admin_url, self.template))
        try:
            await migrate(conn)
        finally:
            await conn.close()

    async def new_database(self, empty: bool = False) -> str:
        name = f"cs_t_{os.getpid()}_{next(_counter)}"
        admin = await asyncpg.connect(self.admin_url)
        try:
            tpl = "template0" if empty else self.template
            await admin.execute(f'CREATE DATABASE "{name}" TEMPLATE "{tpl}"')
        finally:
            await admin.close()
        return with_database(self.admin_url, name)

    async def drop_database(self, url: str) -> None:
        name = urlsplit(url).path.lstrip("/")
        admin = await asyncpg.connect(self.admin_url)
        try:
            await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        finally:
            await admin.close()

    async def teardown(self) -> None:
        if self.server is None:
            admin = await asyncpg.connect(self.admin_url)
            try:
                rows = await admin.fetch(
                    "SELECT datname FROM pg_database WHERE datname LIKE $1 OR datname = $2",
                    f"cs_t_{os.getpid()}_%", self.template,
                )
                for r in rows:
                    await admin.execute(f'DROP DATABASE IF EXISTS "{r["datname"]}" WITH (FORCE)')
            finally:
                await admin.close()
        else:
            self.server.cleanup()
            shutil.rmtree(self.tmpdir, ignore_errors=True)


@contextlib.asynccontextmanager
async def scratch_connection():
    """One connection to a fresh migrated database on its own cluster, all
    dropped on exit: what a one-process benchmark needs."""
    cluster = PgCluster()
    await cluster.setup_template()
    url = await cluster.new_database()
    conn = await asyncpg.connect(url)
    try:
        yield conn
    finally:
        await conn.close()
        await cluster.drop_database(url)
        await cluster.teardown()


async def wait_until(pool: asyncpg.Pool, sql: str, *args, timeout: float = 30.0, interval: float = 0.05,
                     diagnose=None) -> None:
    """Poll `sql` until it returns a true value; on timeout fail with the query
    and, when given, what `await diagnose(conn)` says about the state."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        async with pool.acquire() as conn:
            if await conn.fetchval(sql, *args):
                return
        await asyncio.sleep(interval)
    evidence = ""
    if diagnose is not None:
        async with pool.acquire() as conn:
            evidence = "\n" + await diagnose(conn)
    raise AssertionError(f"timed out waiting for: {sql} {args}{evidence}")
