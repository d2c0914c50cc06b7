"""An embedded Postgres for the demo, tests and single-host runs.

Used only when no database URL is configured. `pgserver` ships Postgres
binaries and, when run as root, starts the server as its own system user
(Postgres refuses to run as root).
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path


def start_embedded(data_dir: str | Path, database: str = "chainsettle") -> str:
    """Start (or reuse) the server in data_dir; return a URL for `database`."""
    warnings.filterwarnings("ignore", module="platformdirs")
    os.environ.setdefault("XDG_RUNTIME_DIR", "/tmp")
    import pgserver  # imported lazily: only single-host runs need it

    path = Path(data_dir).expanduser().resolve()
    path.mkdir(parents=True, exist_ok=True)
    # Unix socket paths are limited to ~107 bytes; the socket lives in data_dir.
    if len(str(path)) > 80:
        raise RuntimeError(f"embedded Postgres directory path too long for a unix socket: {path}")
    # "stop": the server stops when the last process using it exits, so a
    # Ctrl-C of the demo or daemon leaves nothing running.
    server = pgserver.get_server(str(path), cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{database}';")
    if "1 row" not in exists:
        server.psql(f'CREATE DATABASE "{database}";')
    return f"postgresql://postgres@/{database}?host={path}"
