"""`chainsettle distributions ...` end to end on a real database: snapshot from a file, create,
show, tree, proof; a refusal exits non-zero naming the field."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from settlement.distributions.merkle import CLAIM_ENCODING, verify
from tests.support.ledger import ASSET, fund, ready_chain

from .support import dist_settings

ROOT = Path(__file__).resolve().parents[4]
HOLDERS = ["0x" + f"{i:02x}" * 20 for i in range(1, 4)]


async def test_cli_snapshot_create_tree_proof(pool, db_url, tmp_path):
    settings = dist_settings(tmp_path, accounts=[{"code": "app:pool"}])
    text = (tmp_path / "chainsettle.toml").read_text()
    (tmp_path / "chainsettle.toml").write_text(f'[database]\nurl = "{db_url}"\n\n' + text)
    await ready_chain(pool, settings)
    await fund(pool, "app:pool", 100)
    (tmp_path / "w.json").write_text(json.dumps([[h, i + 1] for i, h in enumerate(HOLDERS)]))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    base = [sys.executable, "-m", "daemon.cli", "--config", str(tmp_path / "chainsettle.toml"), "distributions"]

    def run(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(base + list(args), capture_output=True, text=True, env=env, timeout=60)

    out = run("snapshot", "--id", "s", "--kind", "list", "--weights", str(tmp_path / "w.json"))
    assert out.returncode == 0 and json.loads(out.stdout)["snapshot"]["holders"] == 3, out.stderr
    out = run("create", "--id", "d", "--snapshot", "s", "--pool", "app:pool", "--asset", ASSET, "--total", "60",
              "--mode", "pull")
    assert out.returncode == 0 and json.loads(out.stdout)["created"], out.stderr
    out = run("create", "--id", "e", "--snapshot", "s", "--pool", "app:pool", "--asset", ASSET, "--total", "60000")
    assert out.returncode != 0 and "pool_account" in out.stderr
    shown = json.loads(run("show", "d").stdout)
    assert shown["shares"]["owed"] == {"count": 3, "amount": "60"}
    tree = json.loads(run("tree", "d").stdout)
    proof = json.loads(run("proof", "d", HOLDERS[1]).stdout)
    assert tree["tree"][0] == proof["root"] and proof["amount"] == "20"
    assert verify(proof["root"], CLAIM_ENCODING, (str(proof["index"]), HOLDERS[1], "20"), proof["proof"])
    owed = json.loads(run("owed", HOLDERS[2].upper().replace("0X", "0x")).stdout)
    assert [(e["distribution"], e["owed"], e["account"]) for e in owed["entitlements"]] == [
        ("d", "30", f"entitlement:d:{HOLDERS[2]}")]
    bad = run("owed", "user:local:0x12")
    assert bad.returncode != 0 and "account" in bad.stderr
