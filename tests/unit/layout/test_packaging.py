"""`pip install` installs the data directories (static page, ABIs, migrations) without setuptools warnings."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[3]


def test_build_installs_data_directories_without_warnings(tmp_path):
    out = subprocess.run([sys.executable, "-c", "from setuptools import setup; setup()", "build_py", "-d", str(tmp_path)],
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert "please list it in `packages`" not in out.stderr and "is absent from the `packages`" not in out.stderr
    for path in ("api/static/index.html", "api/static/app.js", "api/static/example/index.html", "config/abis/erc20.json",
                 "db/migrations/0001_core.sql", "settlement/payouts/payouts.sql"):
        assert (tmp_path / path).is_file(), path
