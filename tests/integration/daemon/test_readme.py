"""The README cannot drift from the code: its quick start (`make demo` runs
`chainsettle demo`) and every command block marked `<!-- demo-test -->` run
here, as written, against a demo this test starts (its state in a temporary
directory instead of `.state/demo`, the only substitution).

Each block runs in `bash -e -o pipefail` from the repository root, so any
command that fails (a 4xx/5xx with `curl -f`, a CLI error, a `grep -q` that
finds nothing) fails the test, naming the block. The demo must print no
traceback and stop cleanly on Ctrl-C (SIGINT).
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import aiohttp
import pytest

from daemon.devchain import free_port
from tests.integration.api.test_status_page import CHROMIUM, chromium, open_page, wait_for

ROOT = Path(__file__).resolve().parents[3]
README = ROOT / "README.md"
ARTIFACTS = ROOT / "tests" / "artifacts"
MARK = "<!-- demo-test -->"
STATE_IN_README = ".state/demo/"


def marked_blocks(text: str) -> list[tuple[int, str]]:
    """(line number, body) of every ```sh block right after the marker."""
    out = []
    for m in re.finditer(re.escape(MARK) + r"\s*\n```sh\n(.*?)\n```", text, re.S):
        out.append((text[: m.start()].count("\n") + 1, m.group(1)))
    return out


def test_the_readme_marks_runnable_blocks():
    blocks = marked_blocks(README.read_text())
    assert len(blocks) >= 6 and README.read_text().count(MARK) == len(blocks)
    assert all(STATE_IN_README + "demo.env" in body for _, body in blocks)


@pytest.fixture(scope="module")
def demo():
    """One demo for the module (its start-up is most of the cost). Its state is in a directory of
    its own, not pytest's base temp: a pytest run elsewhere on the machine prunes old base temps,
    and the demo's embedded Postgres must not lose its data directory mid-run."""
    tmp_path = Path(tempfile.mkdtemp(prefix="chainsettle-readme-"))
    state = tmp_path / "demo"
    log = tmp_path / "demo.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_") and k != "DATABASE_URL"}
    env.update(CHAINSETTLE_DEMO_STATE=str(state), PYTHONUNBUFFERED="1")
    out = open(log, "wb")
    proc = subprocess.Popen([sys.executable, "-m", "daemon.cli", "demo", "--api-port", str(free_port())],
                            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 300  # a deadline, not a speed claim: CI machines are shared
        while b"admin token" not in log.read_bytes():
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the demo did not come up:\n" + log.read_text()[-3000:]
            time.sleep(0.2)
        url = re.search(r"CS_URL='([^']+)'", (state / "demo.env").read_text()).group(1)
        while True:  # the banner comes first; the API once the daemon is up
            try:
                with urllib.request.urlopen(f"{url}/health", timeout=2) as resp:
                    if resp.status == 200:
                        break
            except OSError:
                pass
            assert proc.poll() is None and time.monotonic() < deadline, log.read_text()[-3000:]
            time.sleep(0.2)
        yield state, log
        proc.send_signal(signal.SIGINT)
        assert proc.wait(60) == 0, log.read_text()[-3000:]
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(10)
        out.close()
        shutil.rmtree(tmp_path, ignore_errors=True)


def test_every_marked_readme_block_runs_against_the_demo(demo):
    state, log = demo
    env = {k: v for k, v in os.environ.items() if not k.startswith("CHAINSETTLE_") and k != "DATABASE_URL"}
    for line, body in marked_blocks(README.read_text()):
        script = body.replace(STATE_IN_README, f"{state}/")
        run = subprocess.run(["bash", "-e", "-o", "pipefail", "-c", script], cwd=ROOT, env=env,
                             capture_output=True, text=True, timeout=120)
        assert run.returncode == 0, (f"README.md block at line {line} failed ({run.returncode}):\n{body}\n"
                                     f"--- stdout\n{run.stdout[-2000:]}\n--- stderr\n{run.stderr[-2000:]}")
    text = log.read_text()
    assert "Traceback" not in text, text[-3000:]
    assert "state        " + str(state) in text and "wiped at every start" in text


@pytest.mark.skipif(CHROMIUM is None, reason="chromium not found")
async def test_the_demos_status_page_in_commit_order_with_units(demo, tmp_path):
    """The page of a running demo daemon, as a newcomer opens it; a screenshot to look at."""
    state, _ = demo
    url = re.search(r"CS_URL='([^']+)'", (state / "demo.env").read_text()).group(1)
    async with chromium(tmp_path) as tools:
        page = await open_page(tools, url + "/")
        await tools.send("Emulation.setDeviceMetricsOverride",
                         {"width": 1280, "height": 1600, "deviceScaleFactor": 1, "mobile": False}, session=page)
        await asyncio.sleep(8)  # a few blocks, deposits and batches for the page to show
        shown = await wait_for(tools, page, """(() => {
            const rows = [...document.querySelectorAll('#events tr[data-event-id]')];
            return rows.length >= 5 && rows.map((r) => ({id: Number(r.dataset.eventId), chain: r.dataset.chain,
                amount: (r.querySelector('.field[data-key="value"] .amount') || {}).textContent || null}));
        })()""")
        # The page's order is the API's commit order: every shown id, in the API's relative order.
        async with aiohttp.ClientSession() as http:
            async with http.get(url + "/v1/events", params={"order": "desc", "limit": "200"}) as resp:
                api = [e["id"] for e in (await resp.json())["events"]]
        ids = [r["id"] for r in shown]
        ranked = [api.index(i) for i in ids if i in api]
        assert len(ranked) >= len(ids) - 5 and ranked == sorted(ranked), (ids, api[:60])
        token_amounts = [r["amount"] for r in shown if r["chain"] == "local" and r["amount"]]
        assert token_amounts and all(a.endswith(" TST") for a in token_amounts), token_amounts
        ARTIFACTS.mkdir(exist_ok=True)
        shot = await tools.send("Page.captureScreenshot", {"format": "png"}, session=page)  # the first screen
        (ARTIFACTS / "status_page_demo.png").write_bytes(base64.b64decode(shot["data"]))
