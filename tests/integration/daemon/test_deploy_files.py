"""Deployment artifacts: Prometheus config and rules, Grafana dashboard, example config."""

from __future__ import annotations

import importlib
import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from config import load_settings

ROOT = Path(__file__).resolve().parents[3]
METRIC_MODULES = ["indexer.metrics", "indexer.xrpl.metrics", "settlement.ledger.metrics", "settlement.payouts.metrics", "api.metrics",
                  "delivery.metrics", "settlement.distributions.loop", "settlement.distributions.claims"]
SUFFIXES = {"counter": ("_total", "_created"), "histogram": ("_bucket", "_sum", "_count", "_created"), "summary": ("_sum", "_count")}


def exported_names() -> set[str]:
    for mod in METRIC_MODULES:
        try:
            importlib.import_module(mod)
        except ModuleNotFoundError:
            pass
    names = set()
    for fam in REGISTRY.collect():
        names.add(fam.name)
        names.update(fam.name + s for s in SUFFIXES.get(fam.type, ()))
    return names


def referenced(text: str) -> set[str]:
    return set(re.findall(r"\bchainsettle_[a-z0-9_]+", text))


def test_dashboard_is_generated_from_its_script():
    from grafana.build_dashboard import OUT, build

    assert json.loads(OUT.read_text()) == build()


def test_dashboard_and_alerts_use_only_exported_metrics():
    names = exported_names()
    dash = (ROOT / "grafana/dashboards/chainsettle.json").read_text()
    alerts = (ROOT / "deploy/prometheus/alerts.yml").read_text()
    used = referenced(dash) | referenced(alerts)
    assert used, "no metric referenced"
    assert used - names == set()


@pytest.mark.skipif(shutil.which("promtool") is None, reason="promtool not installed (Debian package prometheus)")
def test_promtool_accepts_config_and_rules(tmp_path):
    rules = tmp_path / "alerts.yml"
    shutil.copy(ROOT / "deploy/prometheus/alerts.yml", rules)
    cfg = (ROOT / "deploy/prometheus/prometheus.yml").read_text().replace("/etc/prometheus/alerts.yml", str(rules))
    (tmp_path / "prometheus.yml").write_text(cfg)
    for args in (["check", "rules", str(rules)], ["check", "config", str(tmp_path / "prometheus.yml")]):
        out = subprocess.run(["promtool", *args], capture_output=True, text=True)
        assert out.returncode == 0, out.stdout + out.stderr


def test_example_config_loads(monkeypatch):
    monkeypatch.setenv("FLARE_RPC_URL_2", "https://rpc.example/v2/not-a-real-key")
    settings = load_settings(ROOT / "config/chainsettle.example.toml")
    assert {c.name: c.effective_chain_id for c in settings.chains} == {"flare": 14, "bsc": 56, "cronos": 25}
    assert settings.chain("bsc").uses_finalized_tag
    assert settings.chain("flare").effective_finality_depth == 1


def test_systemd_unit_is_hardened_and_keeps_secrets_out():
    unit = (ROOT / "config/chainsettle.service").read_text()
    for directive in ("NoNewPrivileges=yes", "ProtectSystem=strict", "Restart=on-failure", "EnvironmentFile=", "User=chainsettle"):
        assert directive in unit
    assert "PRIVATE_KEY" not in unit and "password" not in unit.lower().replace("its password", "")
