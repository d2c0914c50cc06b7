"""A real Prometheus server (Debian's `prometheus`) for alert-rule tests.

It scrapes a running daemon's /metrics every second and evaluates the
project's own rules (deploy/prometheus/alerts.yml). Only the `for:` hold
times are shortened (to `hold`), so a test sees an alert go pending →
firing → resolved in seconds; the expressions are the shipped ones.

    with PrometheusServer(["127.0.0.1:8080"]) as prom:
        prom.wait_for_alert("ChainsettlePayoutsHeld")
        ...
        prom.wait_until_resolved("ChainsettlePayoutsHeld")
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable, TypeVar

import yaml

from daemon.devchain import free_port

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "deploy" / "prometheus" / "alerts.yml"
T = TypeVar("T")


def prometheus_binary() -> str | None:
    return shutil.which("prometheus")


def shortened_rules(hold: str) -> dict:
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
        for rule in group["rules"]:
            if "for" in rule:
                rule["for"] = hold
    return rules


class PrometheusServer:
    def __init__(self, targets: list[str], *, hold: str = "2s") -> None:
        self.targets = targets
        self.hold = hold
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.dir = Path(tempfile.mkdtemp(prefix="csprom-"))
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> "PrometheusServer":
        binary = prometheus_binary()
        if binary is None:
            raise RuntimeError("prometheus is not installed (apt-get install prometheus; .ci/run does it)")
        (self.dir / "alerts.yml").write_text(yaml.safe_dump(shortened_rules(self.hold)))
        (self.dir / "prometheus.yml").write_text(yaml.safe_dump({
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(self.dir / "alerts.yml")],
            "scrape_configs": [{"job_name": "chainsettle", "metrics_path": "/metrics",
                                "static_configs": [{"targets": self.targets}]}],
        }))
        self.proc = subprocess.Popen(
            [binary, f"--config.file={self.dir / 'prometheus.yml'}", f"--storage.tsdb.path={self.dir / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}", "--log.level=warn"],
            stdout=subprocess.DEVNULL, stderr=open(self.dir / "prometheus.log", "wb"),
        )
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(f"{self.url}/-/ready", timeout=1) as r:
                    if r.status == 200:
                        return self
            except (urllib.error.URLError, ConnectionError, TimeoutError):
                pass
            if self.proc.poll() is not None:
                raise RuntimeError((self.dir / "prometheus.log").read_text()[-2000:])
            time.sleep(0.2)
        raise RuntimeError("prometheus did not become ready")

    def __exit__(self, *exc) -> None:
        if self.proc is not None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _get(self, path: str) -> dict:
        with urllib.request.urlopen(f"{self.url}{path}", timeout=5) as r:
            return json.loads(r.read())

    def alerts(self, state: str | None = "firing") -> list[dict]:
        out = self._get("/api/v1/alerts")["data"]["alerts"]
        return [a for a in out if state is None or a["state"] == state]

    def firing(self, name: str) -> list[dict]:
        return [a for a in self.alerts("firing") if a["labels"]["alertname"] == name]

    def query(self, expr: str) -> list[dict]:
        from urllib.parse import quote

        return self._get(f"/api/v1/query?query={quote(expr)}")["data"]["result"]

    @staticmethod
    def _has(alert: dict, name: str, labels: dict[str, str]) -> bool:
        return alert["labels"]["alertname"] == name and all(alert["labels"].get(k) == v for k, v in labels.items())

    @staticmethod
    def _poll(probe: Callable[[], T], timeout: float, interval: float, failure: Callable[[], str]) -> T:
        """`probe`'s first true answer, asked every `interval` seconds."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            found = probe()
            if found:
                return found
            time.sleep(interval)
        raise AssertionError(failure())

    def wait_for_alert(self, name: str, timeout: float = 60, **labels: str) -> dict:
        return self._poll(
            lambda: next((a for a in self.firing(name) if self._has(a, name, labels)), None),
            timeout, 0.5,
            lambda: f"{name} {labels} did not fire within {timeout}s; firing: {[a['labels'] for a in self.alerts()]}")

    def wait_until_down(self, target: str, timeout: float = 30) -> None:
        """Until a scrape of `target` has failed (`up` is 0): Prometheus then marks
        the target's series stale, which is what resolves its alerts."""
        self._poll(lambda: [r["value"][1] for r in self.query(f'up{{instance="{target}"}}')] == ["0"],
                   timeout, 0.2, lambda: f"{target} still scraped as up after {timeout}s")

    def wait_until_resolved(self, name: str, timeout: float = 60, **labels: str) -> None:
        """Until no alert `name` (with these labels, when given) is pending or firing."""
        self._poll(
            lambda: not any(self._has(a, name, labels) for a in self.alerts(None)),
            timeout, 0.5, lambda: f"{name} still active after {timeout}s")
