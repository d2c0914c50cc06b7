"""One results file for all benchmarks: bench/results.json, and the table printed from it.

Each `bench/*.py` script records its figures under its own name (replacing
that name's previous entry, keeping the others), with the machine it ran on;
`python bench/results.py` prints the whole table. Figures, never pass/fail.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
from pathlib import Path

RESULTS = Path(__file__).with_name("results.json")


def machine() -> dict:
    mem_kib = 0
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                mem_kib = int(line.split()[1])
    except OSError:
        pass
    return {"nproc": os.cpu_count(), "memory_gib": round(mem_kib / 2**20, 1), "python": platform.python_version(),
            "kernel": platform.release()}


def load() -> dict:
    try:
        return json.loads(RESULTS.read_text())
    except (OSError, ValueError):
        return {}


def record(name: str, rows: list[tuple[str, float | int | str | None, str, str]], **extra) -> None:
    """Store one benchmark's rows: (figure, value, unit, target or note)."""
    doc = load()
    doc.setdefault("benchmarks", {})[name] = {
        "at": dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M:%SZ"), "machine": machine(),
        "rows": [{"figure": f, "value": v, "unit": u, "target": t} for f, v, u, t in rows], **extra}
    RESULTS.write_text(json.dumps(doc, indent=2) + "\n")
    print_table({"benchmarks": {name: doc["benchmarks"][name]}})


def _fmt(v) -> str:
    if isinstance(v, float):
        return f"{v:,.0f}" if abs(v) >= 100 else f"{v:.2f}"
    if isinstance(v, int):
        return f"{v:,}"
    return "-" if v is None else str(v)


def print_table(doc: dict | None = None) -> None:
    doc = load() if doc is None else doc
    lines = []
    for name, b in doc.get("benchmarks", {}).items():
        m = b.get("machine", {})
        lines.append(f"## {name}  ({b.get('at')}, {m.get('nproc')} cores, {m.get('memory_gib')} GiB)")
        for r in b["rows"]:
            lines.append(f"  {r['figure']:<58} {_fmt(r['value']):>12} {r['unit']:<10} {r['target'] or ''}")
    print("\n".join(lines))


def markdown(doc: dict | None = None) -> str:
    doc = load() if doc is None else doc
    out = ["| benchmark | figure | value | unit | target / note |", "|---|---|---:|---|---|"]
    for name, b in doc.get("benchmarks", {}).items():
        for r in b["rows"]:
            out.append(f"| {name} | {r['figure']} | {_fmt(r['value'])} | {r['unit']} | {r['target'] or ''} |")
    return "\n".join(out)


if __name__ == "__main__":
    import sys

    if "--markdown" in sys.argv:
        print(markdown())
    else:
        print_table()
