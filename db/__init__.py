"""Postgres access: pool, migrations, named queries, embedded server."""

from .audit import audit
from .migrate import migrate
from .pool import DatabaseError, connect, create_pool, side_connection
from .queries import Queries, load_queries, parse_queries

__all__ = ["DatabaseError", "audit", "Queries", "connect", "create_pool", "load_queries", "migrate", "parse_queries", "side_connection"]
