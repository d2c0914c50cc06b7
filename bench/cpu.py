"""CPU seconds used by the processes of a benchmark run: the daemon, Postgres backends, the nodes.

Postgres backends come and go with the pool's connections, so a sampler
thread reads each process's CPU time every 20 ms and keeps the last value
seen per process; the sum over a run is what it used.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable
from pathlib import Path

import psutil


def postmaster_pid(cluster) -> int | None:
    """The embedded server's postmaster (tests/support/pg.PgCluster), None for an external one."""
    tmpdir = getattr(cluster, "tmpdir", None)
    pidfile = Path(tmpdir, "postmaster.pid") if tmpdir else None
    if pidfile is None or not pidfile.exists():
        return None
    return int(pidfile.read_text().split()[0])


class CpuMeter:
    """`with CpuMeter(...) as m:` ... `m.seconds` -> {"daemon": s, "postgres": s, "node": s}.

    Only this run's processes count: the daemon (its pid, once started), the
    given nodes, and the children of the given postmaster (every local
    Postgres process when it is None: an external server).
    """

    def __init__(self, daemon_pid: Callable[[], int | None] | None = None, node_pids: list[int] = (),
                 postmaster: int | None = None) -> None:
        self._daemon_pid = daemon_pid
        self._nodes = set(node_pids)
        self._postmaster = postmaster
        self._start: dict[int, float] = {}
        self._last: dict[int, tuple[str, float]] = {}
        self._roles: dict[int, str] = {}
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self.wall = 0.0

    def _processes(self) -> list[tuple[str, psutil.Process]]:
        out = []
        daemon = self._daemon_pid() if self._daemon_pid else None
        for pid in [daemon, *self._nodes]:
            if pid is not None:
                with contextlib.suppress(psutil.Error):
                    out.append(("daemon" if pid == daemon else "node", psutil.Process(pid)))
        if self._postmaster is not None:
            with contextlib.suppress(psutil.Error):
                root = psutil.Process(self._postmaster)
                out += [("postgres", p) for p in [root, *root.children(recursive=True)]]
        else:
            out += [("postgres", p) for p in psutil.process_iter(["name"]) if (p.info["name"] or "").startswith("postgres")]
        return out

    def _read(self) -> dict[int, tuple[str, float]]:
        out = {}
        for kind, p in self._processes():
            try:
                t = p.cpu_times()
                out[p.pid] = (kind, t.user + t.system)
                if kind == "postgres" and p.pid not in self._roles:
                    self._roles[p.pid] = _pg_role(p)
            except psutil.Error:
                pass
        return out

    def _run(self) -> None:
        while not self._stop.is_set():
            self._last.update(self._read())
            time.sleep(0.02)

    def __enter__(self) -> "CpuMeter":
        self._start = {pid: t for pid, (_, t) in self._read().items()}
        self._t0 = time.perf_counter()
        self._thread.start()
        return self

    def mark_start(self) -> None:
        """Count from now: what the process did before (imports, connecting) is left out."""
        self._last.update(self._read())
        self._start = {pid: t for pid, (_, t) in self._last.items()}
        self._t0 = time.perf_counter()

    def mark_end(self) -> None:
        """Count up to now: shutting down is left out."""
        self._last.update(self._read())
        self._stop.set()
        self.wall = time.perf_counter() - self._t0

    def __exit__(self, *exc) -> None:
        if not self._stop.is_set():
            self.mark_end()
        self._thread.join()

    @property
    def seconds(self) -> dict[str, float]:
        out = {"daemon": 0.0, "postgres": 0.0, "node": 0.0}
        for pid, (kind, t) in self._last.items():
            out[kind] += t - self._start.get(pid, 0.0)
        return out

    @property
    def postgres_roles(self) -> dict[str, float]:
        """Postgres's CPU by process role: client backend, autovacuum worker, checkpointer, walwriter, ..."""
        out: dict[str, float] = {}
        for pid, (kind, t) in self._last.items():
            if kind == "postgres":
                role = self._roles.get(pid, "other")
                out[role] = out.get(role, 0.0) + t - self._start.get(pid, 0.0)
        return out

    @property
    def cores(self) -> float:
        """Average cores busy over the run."""
        return sum(self.seconds.values()) / self.wall if self.wall else 0.0


_PG_BACKGROUND = ("checkpointer", "background writer", "walwriter", "autovacuum launcher", "autovacuum worker",
                  "logical replication launcher", "startup", "archiver")


def _pg_role(p: psutil.Process) -> str:
    """A Postgres process's role from its title (`postgres: checkpointer`); clients' titles name user and database."""
    title = " ".join(p.cmdline())
    if not title.startswith("postgres:"):
        return "postmaster"
    rest = title[len("postgres:"):].strip()
    return next((b for b in _PG_BACKGROUND if rest.startswith(b)), "client backend")
