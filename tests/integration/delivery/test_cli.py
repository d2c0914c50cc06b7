"""`chainsettle deliveries ...` against a real database: create, list, pause, redeliver, attempts; errors name the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from tests.support.config import write_config

ROOT = Path(__file__).resolve().parents[3]


def cli(config: Path, db_url: str, *args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_")}
    env["DATABASE_URL"] = db_url
    return subprocess.run([sys.executable, "-m", "daemon.cli", "--config", str(config), "deliveries", *args],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)


def test_deliveries_cli(db_url, tmp_path):
    config = write_config(tmp_path / "chainsettle.toml", {"delivery": {"allow_loopback": True}})
    out = cli(config, db_url, "create", "app", "--sink", "webhook", "--url", "http://127.0.0.1:9/hook",
              "--ordering", "strict", "--filter", '{"types": ["payout"]}')
    assert out.returncode == 0, out.stderr
    created = json.loads(out.stdout)["subscription"]
    assert created["secret"].startswith("whsec_") and created["filter"]["types"] == ["payout"]
    listed = json.loads(cli(config, db_url, "list", "--json").stdout)["subscriptions"]
    table = cli(config, db_url, "list").stdout.splitlines()  # a person's view: an aligned table
    assert table[1].split()[:2] == ["id", "sink"] and table[2].split()[:2] == ["app", "webhook"]
    assert [s["id"] for s in listed] == ["app"] and created["secret"] not in json.dumps(listed)
    paused = json.loads(cli(config, db_url, "pause", "app", "--reason", "deploy").stdout)["subscription"]
    assert paused["state"] == "paused" and paused["state_reason"] == "deploy"
    assert json.loads(cli(config, db_url, "ping", "app").stdout)["ping"]["msg_id"].startswith("ping_")
    msgs = json.loads(cli(config, db_url, "messages", "app", "--json").stdout)["messages"]
    assert [m["type"] for m in msgs] == ["ping"]
    assert json.loads(cli(config, db_url, "redeliver", "app", "--from-seq", "1").stdout)["redelivered"] == 1
    assert json.loads(cli(config, db_url, "attempts", "app", "--json").stdout)["attempts"] == []
    bad = cli(config, db_url, "redeliver", "app", "--from-time", "yesterday")
    assert bad.returncode != 0 and "from-time" in bad.stderr
    missing = cli(config, db_url, "pause", "nope")
    assert missing.returncode != 0 and "id: no such subscription" in missing.stderr
    refused = cli(config, db_url, "create", "x", "--sink", "webhook", "--url", "https://10.1.2.3/h")
    assert refused.returncode != 0 and "url:" in refused.stderr
    rotated = json.loads(cli(config, db_url, "rotate-secret", "app", "--overlap", "10").stdout)["subscription"]
    assert rotated["secret"] != created["secret"] and len(rotated["secrets"]) == 2
    assert json.loads(cli(config, db_url, "delete", "app").stdout) == {"deleted": "app"}
